"""FastReID's MobileNetV3 (``build_mobilenetv3_backbone``): Large / Small with a 1x1 head conv.

The trunk is the MobileNetV3 of Howard et al. in torchvision's layout (``features.N.block.M``,
squeeze-excitation ``fc1`` / ``fc2``); FastReID appends ``conv``: a 1x1 conv to 1280 (Large)
or 1024 (Small) channels, norm and ReLU6, so its output width differs from torchvision's.
"""

from __future__ import annotations

from typing import List, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from .build import BACKBONE_REGISTRY
from .mobilenetv2 import make_divisible
from .pretrained import load_backbone_pretrain

__all__ = ["MobileNetV3", "build_mobilenetv3_backbone"]


class _Block(NamedTuple):
    cin: int
    kernel: int
    expanded: int
    cout: int
    se: bool
    hardswish: bool
    stride: int


# Howard et al., Tables 1 and 2.
_LARGE = [
    _Block(16, 3, 16, 16, False, False, 1),
    _Block(16, 3, 64, 24, False, False, 2),
    _Block(24, 3, 72, 24, False, False, 1),
    _Block(24, 5, 72, 40, True, False, 2),
    _Block(40, 5, 120, 40, True, False, 1),
    _Block(40, 5, 120, 40, True, False, 1),
    _Block(40, 3, 240, 80, False, True, 2),
    _Block(80, 3, 200, 80, False, True, 1),
    _Block(80, 3, 184, 80, False, True, 1),
    _Block(80, 3, 184, 80, False, True, 1),
    _Block(80, 3, 480, 112, True, True, 1),
    _Block(112, 3, 672, 112, True, True, 1),
    _Block(112, 5, 672, 160, True, True, 2),
    _Block(160, 5, 960, 160, True, True, 1),
    _Block(160, 5, 960, 160, True, True, 1),
]
_SMALL = [
    _Block(16, 3, 16, 16, True, False, 2),
    _Block(16, 3, 72, 24, False, False, 2),
    _Block(24, 3, 88, 24, False, False, 1),
    _Block(24, 5, 96, 40, True, True, 2),
    _Block(40, 5, 240, 40, True, True, 1),
    _Block(40, 5, 240, 40, True, True, 1),
    _Block(40, 5, 120, 48, True, True, 1),
    _Block(48, 5, 144, 48, True, True, 1),
    _Block(48, 5, 288, 96, True, True, 2),
    _Block(96, 5, 576, 96, True, True, 1),
    _Block(96, 5, 576, 96, True, True, 1),
]
# DEPTH -> (blocks, output width of FastReID's head conv)
MOBILENETV3_SIZES = {"large": (_LARGE, 1280), "small": (_SMALL, 1024)}


def _conv_norm_act(
    cin: int, cout: int, kernel: int, stride: int, bn_norm: str, act: type, groups: int = 1
) -> nn.Sequential:
    layers: List[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        get_norm(bn_norm, cout),
    ]
    if act is not nn.Identity:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gate: global pool -> fc1 -> ReLU -> fc2 -> hard sigmoid, times the input."""

    def __init__(self, channels: int, squeeze_factor: int = 4) -> None:
        super().__init__()
        squeezed = make_divisible(channels // squeeze_factor, 8)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * F.hardsigmoid(scale)


class InvertedResidualV3(nn.Module):
    """Expand 1x1 -> depthwise kxk -> [SE] -> project 1x1, residual when shapes agree."""

    def __init__(self, cfg: _Block, stride: int, bn_norm: str) -> None:
        super().__init__()
        act = nn.Hardswish if cfg.hardswish else nn.ReLU
        layers: List[nn.Module] = []
        if cfg.expanded != cfg.cin:
            layers.append(_conv_norm_act(cfg.cin, cfg.expanded, 1, 1, bn_norm, act))
        layers.append(
            _conv_norm_act(
                cfg.expanded, cfg.expanded, cfg.kernel, stride, bn_norm, act, cfg.expanded
            )
        )
        if cfg.se:
            layers.append(SqueezeExcitation(cfg.expanded))
        layers.append(_conv_norm_act(cfg.expanded, cfg.cout, 1, 1, bn_norm, nn.Identity))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cfg.cin == cfg.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_res_connect else out


class MobileNetV3(nn.Module):
    """FastReID's MobileNetV3 trunk. ``(B, 3, H, W) -> (B, feat_dim, H / 32, W / 32)``."""

    def __init__(self, depth: str = "large", bn_norm: str = "BN") -> None:
        super().__init__()
        blocks, last_channel = MOBILENETV3_SIZES[depth]
        layers: List[nn.Module] = [_conv_norm_act(3, blocks[0].cin, 3, 2, bn_norm, nn.Hardswish)]
        for block in blocks:
            layers.append(InvertedResidualV3(block, block.stride, bn_norm))
        cin = blocks[-1].cout
        layers.append(_conv_norm_act(cin, 6 * cin, 1, 1, bn_norm, nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.conv = _conv_norm_act(6 * cin, last_channel, 1, 1, bn_norm, nn.ReLU6)
        self.feat_dim = int(last_channel)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.features(x))


@BACKBONE_REGISTRY.register()
def build_mobilenetv3_backbone(cfg: CfgNode) -> MobileNetV3:
    """FastReID's MobileNetV3 from ``MODEL.BACKBONE``: DEPTH Large (FEAT_DIM 1280) or Small
    (1024), NORM, PRETRAIN_PATH. Output stride 32: like FastReID, LAST_STRIDE does not apply."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH).lower()
    if depth not in MOBILENETV3_SIZES:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a MobileNetV3 size; use Large or Small."
        )
    model = MobileNetV3(depth, bb.NORM)
    load_backbone_pretrain(
        model, cfg, key_mapper=lambda s: {k: v for k, v in s.items() if "classifier" not in k}
    )
    return model
