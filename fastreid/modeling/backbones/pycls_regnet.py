"""FastReID's RegNet (``build_regnet_backbone``): the pycls RegNetX / RegNetY family.

Radosavovic et al., "Designing Network Design Spaces". Widths come from the quantised linear
rule of the paper, rounded the way pycls rounds them (half to even), so e.g. RegNetY-800MF
ends with 768 channels (torchvision's variant, ``build_torchvision_regnet_backbone``, has 784).
Names are pycls's: ``stem.conv/bn``, ``s1..s4``, blocks ``b1..bN`` with ``proj``/``bn``
shortcut and ``f.a/a_bn/b/b_bn/se.f_ex/c/c_bn``.
"""

from __future__ import annotations

from typing import List, NamedTuple, Tuple

import numpy as np
import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from .build import BACKBONE_REGISTRY
from .pretrained import load_backbone_pretrain
from .pycls_common import SE, drop_keys, init_pycls_convs, run_stages

__all__ = ["RegNet", "build_regnet_backbone", "REGNET_PARAMS", "regnet_stages"]


class RegNetParams(NamedTuple):
    depth: int
    w0: int
    wa: float
    wm: float
    group_w: int
    se: bool


def _x(depth: int, w0: int, wa: float, wm: float, gw: int) -> RegNetParams:
    return RegNetParams(depth, w0, wa, wm, gw, False)


def _y(depth: int, w0: int, wa: float, wm: float, gw: int) -> RegNetParams:
    return RegNetParams(depth, w0, wa, wm, gw, True)


# FastReID's DEPTH name (mega-flops + family) -> pycls model parameters (pycls model zoo).
REGNET_PARAMS = {
    "200x": _x(13, 24, 36.44, 2.49, 8),
    "400x": _x(22, 24, 24.48, 2.54, 16),
    "600x": _x(16, 48, 36.97, 2.24, 24),
    "800x": _x(16, 56, 35.73, 2.28, 16),
    "1600x": _x(18, 80, 34.01, 2.25, 24),
    "3200x": _x(25, 88, 26.31, 2.25, 48),
    "4000x": _x(23, 96, 38.65, 2.43, 40),
    "6400x": _x(17, 184, 60.83, 2.07, 56),
    "8000x": _x(23, 80, 49.56, 2.88, 120),
    "12000x": _x(19, 168, 73.36, 2.37, 112),
    "16000x": _x(22, 216, 55.59, 2.1, 128),
    "32000x": _x(23, 320, 69.86, 2.0, 168),
    "200y": _y(13, 24, 36.44, 2.49, 8),
    "400y": _y(16, 48, 27.89, 2.09, 8),
    "600y": _y(15, 48, 32.54, 2.32, 16),
    "800y": _y(14, 56, 38.84, 2.4, 16),
    "1600y": _y(27, 48, 20.71, 2.65, 24),
    "3200y": _y(21, 80, 42.63, 2.66, 24),
    "4000y": _y(22, 96, 31.41, 2.24, 64),
    "6400y": _y(25, 112, 33.22, 2.27, 72),
    "8000y": _y(17, 192, 76.82, 2.19, 56),
    "12000y": _y(19, 168, 73.36, 2.37, 112),
    "16000y": _y(18, 200, 106.23, 2.48, 112),
    "32000y": _y(20, 232, 115.89, 2.53, 232),
}
STEM_WIDTH = 32
SE_RATIO = 0.25


def regnet_stages(p: RegNetParams, q: int = 8) -> List[Tuple[int, int, int]]:
    """``[(width, blocks, group width), ...]`` per stage of the RegNet ``p`` (pycls's rule)."""
    cont = np.arange(p.depth) * p.wa + p.w0
    ks = np.round(np.log(cont / p.w0) / np.log(p.wm))
    widths = (np.round(p.w0 * np.power(p.wm, ks) / q) * q).astype(int).tolist()
    stage_w: List[int] = []
    stage_d: List[int] = []
    for w in widths:
        if stage_w and stage_w[-1] == w:
            stage_d[-1] += 1
        else:
            stage_w.append(w)
            stage_d.append(1)
    out = []
    for w, d in zip(stage_w, stage_d):
        g = min(p.group_w, w)  # bottleneck ratio 1: the block width is the stage width
        w = int(round(w / g) * g)
        out.append((w, d, g))
    return out


class BottleneckTransform(nn.Module):
    """1x1 -> grouped 3x3 (stride) -> [SE] -> 1x1, norms after each conv."""

    def __init__(
        self, w_in: int, w_out: int, stride: int, group_w: int, se: bool, bn_norm: str
    ) -> None:
        super().__init__()
        self.a = nn.Conv2d(w_in, w_out, 1, bias=False)
        self.a_bn = get_norm(bn_norm, w_out)
        self.a_relu = nn.ReLU(inplace=True)
        self.b = nn.Conv2d(w_out, w_out, 3, stride, 1, groups=w_out // group_w, bias=False)
        self.b_bn = get_norm(bn_norm, w_out)
        self.b_relu = nn.ReLU(inplace=True)
        self.se = SE(w_out, int(round(w_in * SE_RATIO)), nn.ReLU(inplace=True)) if se else None
        self.c = nn.Conv2d(w_out, w_out, 1, bias=False)
        self.c_bn = get_norm(bn_norm, w_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        if self.se is not None:
            x = self.se(x)
        return self.c_bn(self.c(x))


class ResBottleneckBlock(nn.Module):
    """Residual bottleneck; a 1x1 projection shortcut when the shape changes."""

    def __init__(
        self, w_in: int, w_out: int, stride: int, group_w: int, se: bool, bn_norm: str
    ) -> None:
        super().__init__()
        self.proj_block = w_in != w_out or stride != 1
        if self.proj_block:
            self.proj = nn.Conv2d(w_in, w_out, 1, stride, bias=False)
            self.bn = get_norm(bn_norm, w_out)
        self.f = BottleneckTransform(w_in, w_out, stride, group_w, se, bn_norm)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.bn(self.proj(x)) if self.proj_block else x
        return self.relu(shortcut + self.f(x))


class RegNet(nn.Module):
    """pycls RegNet trunk. ``(B, 3, H, W) -> (B, feat_dim, H / 32, W / 32)`` (``H / 16`` with
    ``last_stride=1``)."""

    def __init__(self, params: RegNetParams, bn_norm: str = "BN", last_stride: int = 2) -> None:
        super().__init__()
        self.stem = nn.Module()
        self.stem.conv = nn.Conv2d(3, STEM_WIDTH, 3, 2, 1, bias=False)
        self.stem.bn = get_norm(bn_norm, STEM_WIDTH)
        self.stem.relu = nn.ReLU(inplace=True)
        w_in = STEM_WIDTH
        stages = regnet_stages(params)
        for i, (w, d, g) in enumerate(stages, start=1):
            stride = last_stride if i == len(stages) else 2
            stage = nn.Module()
            for j in range(1, d + 1):
                block = ResBottleneckBlock(w_in, w, stride if j == 1 else 1, g, params.se, bn_norm)
                stage.add_module(f"b{j}", block)
                w_in = w
            self.add_module(f"s{i}", stage)
        self.num_stages = len(stages)
        self.feat_dim = int(w_in)
        init_pycls_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem.relu(self.stem.bn(self.stem.conv(x)))
        x = run_stages(self, x, self.num_stages)
        return x


@BACKBONE_REGISTRY.register()
def build_regnet_backbone(cfg: CfgNode) -> RegNet:
    """FastReID's RegNet from ``MODEL.BACKBONE``: DEPTH ``<MF><x|y>`` (200x ... 32000y, e.g.
    800y for RegNetY-800MF), LAST_STRIDE, NORM, PRETRAIN_PATH (pycls names). FEAT_DIM e.g.
    400y 440, 800x 672, 800y 768, 1600y 888, 3200y 1512."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH).lower()
    if depth not in REGNET_PARAMS:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a RegNet of FastReID; choose one of "
            f"{', '.join(REGNET_PARAMS)}."
        )
    model = RegNet(REGNET_PARAMS[depth], bb.NORM, bb.LAST_STRIDE)
    load_backbone_pretrain(model, cfg, key_mapper=drop_keys("head."))
    return model
