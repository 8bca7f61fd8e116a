"""FastReID's distillation ResNet (``build_resnet_backbone_distill``).

FastReID's FastDistill ResNet moves each block's final ReLU to the start of the next block, so
every stage ends at the residual sum and its output is *pre-ReLU*: the feature the overhaul
distillation compares. Since ``relu(relu(x)) == relu(x)``, the network computes the same
function as the standard ResNet (the stem already ends with a ReLU and ``forward`` applies
the last one), with the same parameter names. So it is the core :class:`ResNet` plus the
methods FastReID's version exposes; FastReID checkpoints of it load unchanged.
"""

from __future__ import annotations

import logging
from typing import List, Tuple

import torch
from torch import nn

from fastreid.config import CfgNode
from fastreid.modeling.backbones import BACKBONE_REGISTRY
from fastreid.modeling.backbones.resnet import (
    BLOCKS_PER_STAGE,
    BasicBlock,
    Bottleneck,
    ResNet,
    _load_pretrain,  # torchvision / IBN-Net ImageNet weights with the IBN split
)

__all__ = ["DistillResNet", "build_resnet_backbone_distill"]

logger = logging.getLogger(__name__)


class DistillResNet(ResNet):
    """ResNet whose stage outputs are taken before their final ReLU (no non-local blocks).

    ``forward``: ``(B, 3, H, W) -> (B, feat_dim, h, w)``, identical to :class:`ResNet`.
    ``extract_feature(x)`` -> ``([f1, f2, f3, f4], relu(f4))`` with ``f_i`` pre-ReLU
    ``(B, stage_channels[i], h_i, w_i)``.
    """

    def extract_feature(
        self, x: torch.Tensor, pre_relu: bool = True
    ) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Stage features (pre-ReLU, or after it with ``pre_relu=False``) and the output map."""
        stages = self.forward_stages(x)
        out = torch.relu(stages[-1])
        if not pre_relu:
            stages = [torch.relu(f) for f in stages]
        return stages, out

    def get_channel_nums(self) -> List[int]:
        """Channels of the four stage outputs (FastReID's name for ``stage_channels``)."""
        return list(self.stage_channels)


@BACKBONE_REGISTRY.register()
def build_resnet_backbone_distill(cfg: CfgNode) -> nn.Module:
    """FastDistill's ResNet from ``MODEL.BACKBONE``: DEPTH 18x/34x/50x/101x/152x, LAST_STRIDE,
    NORM, WITH_IBN, WITH_SE, PRETRAIN / PRETRAIN_PATH. ``WITH_NL`` is ignored (as in FastReID:
    a non-local block at a stage end would hide the pre-ReLU feature)."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH)
    if depth not in BLOCKS_PER_STAGE:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {depth!r} is not supported by build_resnet_backbone_distill; "
            f"choose one of {', '.join(BLOCKS_PER_STAGE)}."
        )
    if bb.WITH_NL:
        logger.warning(
            "MODEL.BACKBONE.WITH_NL is ignored by build_resnet_backbone_distill (no non-local "
            "blocks, as in FastReID); set it False to silence this."
        )
    model = DistillResNet(
        BasicBlock if depth in ("18x", "34x") else Bottleneck,
        BLOCKS_PER_STAGE[depth],
        last_stride=bb.LAST_STRIDE,
        bn_norm=bb.NORM,
        with_ibn=bb.WITH_IBN,
        with_se=bb.WITH_SE,
    )
    _load_pretrain(model, cfg)
    return model
