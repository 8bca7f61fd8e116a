"""torchvision's RegNetX / RegNetY returning feature maps (their ImageNet weights load).

FastReID's RegNet (the pycls networks, other widths) is `build_regnet_backbone`.
"""

from __future__ import annotations

import re
from typing import Dict

import torch
from torch import nn
from torchvision.models import regnet as tv_regnet

from fastreid.config import CfgNode

from ..build import BACKBONE_REGISTRY
from ..pretrained import load_backbone_pretrain
from .utils import norm_factory

__all__ = ["RegNetFeatures", "build_torchvision_regnet_backbone", "REGNET_DEPTHS"]

# FastReID-style DEPTH (mega-flops + family) -> torchvision constructor.
REGNET_DEPTHS = {
    f"{mf}{family}": f"regnet_{family}_{name}"
    for mf, name in [
        ("400", "400mf"),
        ("800", "800mf"),
        ("1600", "1_6gf"),
        ("3200", "3_2gf"),
        ("8000", "8gf"),
        ("16000", "16gf"),
        ("32000", "32gf"),
    ]
    for family in ("x", "y")
}


class RegNetFeatures(nn.Module):
    """``stem`` + ``trunk_output`` of a torchvision RegNet. ``(B, 3, H, W) -> (B, C, h, w)``."""

    def __init__(self, net: tv_regnet.RegNet, last_stride: int = 2) -> None:
        super().__init__()
        self.stem = net.stem
        self.trunk_output = net.trunk_output
        if last_stride != 2:
            # The first block of the last stage down-samples in its 3x3 conv and its projection.
            first = self.trunk_output[-1][0]
            for m in first.modules():
                if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                    m.stride = (last_stride, last_stride)
        convs = [m for m in self.trunk_output.modules() if isinstance(m, nn.Conv2d)]
        self.feat_dim = int(convs[-1].out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk_output(self.stem(x))


def _drop_fc(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


@BACKBONE_REGISTRY.register()
def build_torchvision_regnet_backbone(cfg: CfgNode) -> RegNetFeatures:
    """RegNet from ``MODEL.BACKBONE``: DEPTH like ``800y`` / ``1600x`` (or torchvision's
    ``regnet_y_800mf``), LAST_STRIDE, NORM, PRETRAIN_PATH (torchvision state dict).
    FEAT_DIM e.g. 400x 400, 400y 440, 800x 672, 800y 784, 1600x 912, 1600y 888, 3200y 1512."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH).lower()
    name = REGNET_DEPTHS.get(depth) or (depth if re.fullmatch(r"regnet_[xy]_\w+", depth) else None)
    if name is None or not hasattr(tv_regnet, name):
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a RegNet variant; choose one of "
            f"{', '.join(REGNET_DEPTHS)}."
        )
    net = getattr(tv_regnet, name)(weights=None, norm_layer=norm_factory(bb.NORM))
    model = RegNetFeatures(net, bb.LAST_STRIDE)
    load_backbone_pretrain(model, cfg, key_mapper=_drop_fc)
    return model
