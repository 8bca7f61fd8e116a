"""FastReID's ShuffleNetV2 (``build_shufflenetv2_backbone``), in Megvii's layout.

Ma et al., "ShuffleNet V2". Names: ``first_conv`` (conv, norm, ReLU), a max-pool, ``features``
(the 4 + 8 + 4 blocks, each ``branch_main`` and, when it down-samples, ``branch_proj``),
``conv_last`` (1x1 conv, norm, ReLU).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from .build import BACKBONE_REGISTRY
from .pretrained import load_backbone_pretrain

__all__ = ["ShuffleNetV2", "build_shufflenetv2_backbone"]

STAGE_REPEATS = (4, 8, 4)
# DEPTH -> (stem, stage 2, stage 3, stage 4, last conv) widths.
SHUFFLENETV2_WIDTHS = {
    "0.5x": (24, 48, 96, 192, 1024),
    "1.0x": (24, 116, 232, 464, 1024),
    "1.5x": (24, 176, 352, 704, 1024),
    "2.0x": (24, 244, 488, 976, 2048),
}


def split_shuffled(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Channel shuffle of two groups, returned as its two halves (even and odd channels)."""
    return x[:, 0::2], x[:, 1::2]


class ShuffleV2Block(nn.Module):
    """Stride 1: keep one half, transform the other. Stride 2: transform the input twice.

    ``(B, inp, H, W) -> (B, oup, H / stride, W / stride)`` (``inp`` is half the input channels
    at stride 1).
    """

    def __init__(self, inp: int, oup: int, mid: int, stride: int, bn_norm: str) -> None:
        super().__init__()
        self.stride = stride
        self.branch_main = nn.Sequential(
            nn.Conv2d(inp, mid, 1, bias=False),
            get_norm(bn_norm, mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            get_norm(bn_norm, mid),
            nn.Conv2d(mid, oup - inp, 1, bias=False),
            get_norm(bn_norm, oup - inp),
            nn.ReLU(inplace=True),
        )
        if stride == 2:
            self.branch_proj = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                get_norm(bn_norm, inp),
                nn.Conv2d(inp, inp, 1, bias=False),
                get_norm(bn_norm, inp),
                nn.ReLU(inplace=True),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, x = split_shuffled(x)
            return torch.cat((kept, self.branch_main(x)), 1)
        return torch.cat((self.branch_proj(x), self.branch_main(x)), 1)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 trunk. ``(B, 3, H, W) -> (B, feat_dim, H / 32, W / 32)``."""

    def __init__(self, depth: str = "1.0x", bn_norm: str = "BN") -> None:
        super().__init__()
        widths = SHUFFLENETV2_WIDTHS[depth]
        cin = widths[0]
        self.first_conv = nn.Sequential(
            nn.Conv2d(3, cin, 3, 2, 1, bias=False), get_norm(bn_norm, cin), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks: List[nn.Module] = []
        for repeats, cout in zip(STAGE_REPEATS, widths[1:4]):
            for i in range(repeats):
                if i == 0:
                    blocks.append(ShuffleV2Block(cin, cout, cout // 2, 2, bn_norm))
                else:
                    blocks.append(ShuffleV2Block(cin // 2, cout, cout // 2, 1, bn_norm))
                cin = cout
        self.features = nn.Sequential(*blocks)
        self.conv_last = nn.Sequential(
            nn.Conv2d(cin, widths[4], 1, bias=False),
            get_norm(bn_norm, widths[4]),
            nn.ReLU(inplace=True),
        )
        self.feat_dim = int(widths[4])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_last(self.features(self.maxpool(self.first_conv(x))))


@BACKBONE_REGISTRY.register()
def build_shufflenetv2_backbone(cfg: CfgNode) -> ShuffleNetV2:
    """FastReID's ShuffleNetV2 from ``MODEL.BACKBONE``: DEPTH 0.5x/1.0x/1.5x (FEAT_DIM 1024) or
    2.0x (2048), NORM, PRETRAIN_PATH (Megvii names). Output stride 32: like FastReID,
    LAST_STRIDE does not apply."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH)
    if depth not in SHUFFLENETV2_WIDTHS:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a ShuffleNetV2 width; choose one of "
            f"{', '.join(SHUFFLENETV2_WIDTHS)}."
        )
    model = ShuffleNetV2(depth, bb.NORM)
    load_backbone_pretrain(
        model, cfg, key_mapper=lambda s: {k: v for k, v in s.items() if "classifier" not in k}
    )
    return model
