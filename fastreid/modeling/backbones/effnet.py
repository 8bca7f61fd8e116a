"""FastReID's EfficientNet (``build_effnet_backbone``): the pycls EfficientNet B0-B5.

Tan & Le, "EfficientNet". Names are pycls's: ``stem.conv/bn``, stages ``s1..s7`` with blocks
``b1..bN`` (``exp/exp_bn`` expansion, ``dwise/dwise_bn``, ``se.f_ex``, ``lin_proj/lin_proj_bn``)
and ``head.conv/conv_bn`` (no classifier). Swish everywhere, SE with a Swish inner activation.
torchvision's EfficientNet (other names, ImageNet weights) is ``build_efficientnet_backbone``.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from .build import BACKBONE_REGISTRY
from .mobilenetv2 import make_divisible
from .pretrained import load_backbone_pretrain
from .pycls_common import SE, drop_keys, init_pycls_convs, run_stages
from .torchvision.efficientnet import EFFICIENTNET_SCALES

__all__ = ["EffNet", "build_effnet_backbone", "effnet_stages"]

# EfficientNet-B0 (Tan & Le, Table 1): expansion, kernel, stride, width, blocks per stage.
_B0_STAGES = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]
# DEPTH -> (width multiplier, depth multiplier): Tan & Le's scales, of the sizes pycls
# publishes (b0-b5).
EFFNET_SCALES = {d: EFFICIENTNET_SCALES[d] for d in ("b0", "b1", "b2", "b3", "b4", "b5")}
SE_RATIO = 0.25


def effnet_stages(depth: str) -> Tuple[int, List[Tuple[int, int, int, int, int]], int]:
    """(stem width, [(expansion, kernel, stride, width, blocks)], head width) for ``depth``."""
    wm, dm = EFFNET_SCALES[depth]
    stages = [
        (e, k, s, make_divisible(w * wm, 8), int(math.ceil(d * dm))) for e, k, s, w, d in _B0_STAGES
    ]
    return make_divisible(32 * wm, 8), stages, make_divisible(1280 * wm, 8)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class MBConv(nn.Module):
    """[expand 1x1] -> depthwise kxk (stride) -> SE -> linear 1x1; residual when shapes agree.

    The training-time drop-connect of pycls is left out: it does not change eval features.
    """

    def __init__(
        self, w_in: int, exp_r: int, kernel: int, stride: int, w_out: int, bn_norm: str
    ) -> None:
        super().__init__()
        w_exp = int(w_in * exp_r)
        self.exp = None
        if w_exp != w_in:
            self.exp = nn.Conv2d(w_in, w_exp, 1, bias=False)
            self.exp_bn = get_norm(bn_norm, w_exp)
            self.exp_swish = Swish()
        self.dwise = nn.Conv2d(
            w_exp, w_exp, kernel, stride, (kernel - 1) // 2, groups=w_exp, bias=False
        )
        self.dwise_bn = get_norm(bn_norm, w_exp)
        self.dwise_swish = Swish()
        self.se = SE(w_exp, int(w_in * SE_RATIO), Swish())
        self.lin_proj = nn.Conv2d(w_exp, w_out, 1, bias=False)
        self.lin_proj_bn = get_norm(bn_norm, w_out)
        self.has_skip = stride == 1 and w_in == w_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x
        if self.exp is not None:
            f = self.exp_swish(self.exp_bn(self.exp(f)))
        f = self.dwise_swish(self.dwise_bn(self.dwise(f)))
        f = self.lin_proj_bn(self.lin_proj(self.se(f)))
        return x + f if self.has_skip else f


class EffNet(nn.Module):
    """pycls EfficientNet trunk + head conv. ``(B, 3, H, W) -> (B, feat_dim, H / 32, W / 32)``
    (``H / 16`` with ``last_stride=1``)."""

    def __init__(self, depth: str = "b0", bn_norm: str = "BN", last_stride: int = 2) -> None:
        super().__init__()
        stem_w, stages, head_w = effnet_stages(depth)
        self.stem = nn.Module()
        self.stem.conv = nn.Conv2d(3, stem_w, 3, 2, 1, bias=False)
        self.stem.bn = get_norm(bn_norm, stem_w)
        self.stem.swish = Swish()
        w_in = stem_w
        last_strided = max(i for i, st in enumerate(stages) if st[2] == 2)
        self.num_stages = len(stages)
        for i, (exp_r, kernel, stride, w, d) in enumerate(stages):
            if i == last_strided:
                stride = last_stride
            stage = nn.Module()
            for j in range(d):
                block = MBConv(w_in, exp_r, kernel, stride if j == 0 else 1, w, bn_norm)
                stage.add_module(f"b{j + 1}", block)
                w_in = w
            self.add_module(f"s{i + 1}", stage)
        self.head = nn.Module()
        self.head.conv = nn.Conv2d(w_in, head_w, 1, bias=False)
        self.head.conv_bn = get_norm(bn_norm, head_w)
        self.head.conv_swish = Swish()
        self.feat_dim = int(head_w)
        init_pycls_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem.swish(self.stem.bn(self.stem.conv(x)))
        x = run_stages(self, x, self.num_stages)
        return self.head.conv_swish(self.head.conv_bn(self.head.conv(x)))


@BACKBONE_REGISTRY.register()
def build_effnet_backbone(cfg: CfgNode) -> EffNet:
    """FastReID's EfficientNet from ``MODEL.BACKBONE``: DEPTH b0..b5, LAST_STRIDE, NORM,
    PRETRAIN_PATH (pycls names). FEAT_DIM b0/b1 1280, b2 1408, b3 1536, b4 1792, b5 2048."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH).lower()
    if depth not in EFFNET_SCALES:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not an EfficientNet of FastReID; choose one "
            f"of {', '.join(EFFNET_SCALES)}."
        )
    model = EffNet(depth, bb.NORM, bb.LAST_STRIDE)
    load_backbone_pretrain(model, cfg, key_mapper=drop_keys("head.fc"))
    return model
