"""A small ResNet for tiny images (28x28 Fashion-MNIST, 32x32 CIFAR), He et al. 2016 §4.2.

A 3x3 stem without down-sampling, then three stages of basic blocks at widths
FEAT_DIM/4, FEAT_DIM/2 and FEAT_DIM, the last two starting with stride 2: a 28x28 image
leaves as a 7x7 map. ``DEPTH "6n+2"x`` sets n blocks per stage (``"8x"``: 1, ``"20x"``: 3,
the paper's ResNet-20). The ImageNet stem of the core ResNet would shrink a 28x28 image to
7x7 before the first block, which wastes most of its capacity on such inputs.
"""

from __future__ import annotations

import re
from typing import List

import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from .build import BACKBONE_REGISTRY, check_feat_dim
from .resnet import BasicBlock

__all__ = ["SmallResNet", "build_small_resnet_backbone"]


class SmallResNet(nn.Module):
    """``(B, 3, H, W) -> (B, feat_dim, H/4, W/4)``.

    Args:
        blocks_per_stage: n (depth 6n+2).
        feat_dim: channels of the last stage (the others have feat_dim/4 and feat_dim/2).
        norm: normalisation layer name (see ``get_norm``).
    """

    def __init__(self, blocks_per_stage: int = 1, feat_dim: int = 64, norm: str = "BN") -> None:
        super().__init__()
        if feat_dim % 4:
            raise ValueError(f"MODEL.BACKBONE.FEAT_DIM must be a multiple of 4, got {feat_dim}.")
        widths = [feat_dim // 4, feat_dim // 2, feat_dim]
        self.feat_dim = feat_dim
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = get_norm(norm, widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages: List[nn.Module] = []
        inplanes = widths[0]
        for index, planes in enumerate(widths):
            blocks: List[nn.Module] = []
            for b in range(blocks_per_stage):
                stride = 2 if index > 0 and b == 0 else 1
                downsample = None
                if stride != 1 or inplanes != planes:
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                        get_norm(norm, planes),
                    )
                blocks.append(
                    BasicBlock(inplanes, planes, norm, stride=stride, downsample=downsample)
                )
                inplanes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


_DEPTH = re.compile(r"^(\d+)x?$")


@BACKBONE_REGISTRY.register()
def build_small_resnet_backbone(cfg: CfgNode) -> SmallResNet:
    """SmallResNet from ``MODEL.BACKBONE``: DEPTH ``"8x"`` / ``"14x"`` / ``"20x"`` / ...
    (6n+2), FEAT_DIM, NORM. It has no published weights: PRETRAIN must be False."""
    bb = cfg.MODEL.BACKBONE
    match = _DEPTH.match(str(bb.DEPTH))
    depth = int(match.group(1)) if match else -1
    if depth < 8 or (depth - 2) % 6:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a small-ResNet depth; use 6n+2 with n >= 1, "
            'e.g. "8x", "14x" or "20x".'
        )
    if bb.PRETRAIN:
        raise ValueError(
            "build_small_resnet_backbone has no pretrained weights; set MODEL.BACKBONE.PRETRAIN "
            "False (load your own checkpoint with MODEL.WEIGHTS)."
        )
    model = SmallResNet((depth - 2) // 6, int(bb.FEAT_DIM), bb.NORM)
    return check_feat_dim(cfg, model)
