"""ResNeSt (split-attention ResNet): 50x/101x/200x/269x, with IBN-a and a last-stride option."""

from __future__ import annotations

import logging
import math
from typing import List, Optional

import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from ..layers.ibn import IBN
from ..layers.splat import SplAtConv2d
from .build import BACKBONE_REGISTRY
from .pretrained import load_backbone_pretrain

logger = logging.getLogger(__name__)

__all__ = ["ResNeSt", "ResNeStBottleneck", "build_resnest_backbone"]

# blocks per stage, stem width
RESNEST_DEPTHS = {
    "50x": ([3, 4, 6, 3], 32),
    "101x": ([3, 4, 23, 3], 64),
    "200x": ([3, 24, 36, 3], 64),
    "269x": ([3, 30, 48, 8], 64),
}


class ResNeStBottleneck(nn.Module):
    """1x1 -> split-attention 3x3 -> 1x1 residual block (radix 2, cardinality 1, avd).

    ``(B, inplanes, H, W) -> (B, planes * 4, H / stride, W / stride)``.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        bn_norm: str = "BN",
        with_ibn: bool = False,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        radix: int = 2,
        is_first: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = IBN(width, bn_norm) if with_ibn else get_norm(bn_norm, width)
        # "avd": down-sample with an average pool after the split-attention conv.
        use_avd = stride > 1 or is_first
        self.avd_layer = nn.AvgPool2d(3, stride, padding=1) if use_avd else None
        self.conv2 = SplAtConv2d(
            width, width, 3, 1, dilation, radix=radix, norm=bn_norm, dilation=dilation
        )
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = get_norm(bn_norm, planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        if self.avd_layer is not None:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNeSt(nn.Module):
    """ResNeSt trunk with a deep stem and average-pool down-sampling shortcuts.

    ``forward``: ``(B, 3, H, W) -> (B, 2048, H/32*last_stride, W/32*last_stride)``.
    """

    def __init__(
        self,
        layers: List[int],
        stem_width: int = 32,
        last_stride: int = 1,
        bn_norm: str = "BN",
        with_ibn: bool = False,
        radix: int = 2,
    ) -> None:
        super().__init__()
        self.radix = radix
        self.inplanes = stem_width * 2
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, stem_width, 3, stride=2, padding=1, bias=False),
            get_norm(bn_norm, stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width, 3, padding=1, bias=False),
            get_norm(bn_norm, stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width * 2, 3, padding=1, bias=False),
        )
        self.bn1 = get_norm(bn_norm, self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], 1, bn_norm, with_ibn, is_first=False)
        self.layer2 = self._make_layer(128, layers[1], 2, bn_norm, with_ibn)
        self.layer3 = self._make_layer(256, layers[2], 2, bn_norm, with_ibn)
        # As FastReID: with last stride 1, stage 4 keeps the receptive field growing by
        # dilating the 3x3 convs of its blocks after the first.
        self.layer4 = self._make_layer(
            512, layers[3], last_stride, bn_norm, False, dilation=2 if last_stride == 1 else 1
        )
        self.stage_channels = [256, 512, 1024, 2048]
        self.feat_dim = 2048
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / n))

    def _make_layer(
        self,
        planes: int,
        blocks: int,
        stride: int,
        bn_norm: str,
        with_ibn: bool,
        is_first: bool = True,
        dilation: int = 1,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            # FastReID's shortcut always starts with the pool (an identity at stride 1), so
            # the conv and norm sit at indices 1 and 2 in its checkpoints.
            downsample = nn.Sequential(
                nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(self.inplanes, planes * 4, 1, bias=False),
                get_norm(bn_norm, planes * 4),
            )
        layers = [
            ResNeStBottleneck(
                self.inplanes,
                planes,
                bn_norm,
                with_ibn,
                stride,
                downsample,
                radix=self.radix,
                is_first=is_first,
            )
        ]
        self.inplanes = planes * 4
        for _ in range(1, blocks):
            layers.append(
                ResNeStBottleneck(
                    self.inplanes, planes, bn_norm, with_ibn, radix=self.radix, dilation=dilation
                )
            )
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)


@BACKBONE_REGISTRY.register()
def build_resnest_backbone(cfg: CfgNode) -> ResNeSt:
    """ResNeSt from ``MODEL.BACKBONE``: DEPTH 50x/101x/200x/269x, LAST_STRIDE, NORM, WITH_IBN,
    PRETRAIN_PATH (official ResNeSt names). FEAT_DIM 2048."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH)
    if depth not in RESNEST_DEPTHS:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {depth!r} is not a ResNeSt depth; choose one of "
            f"{', '.join(RESNEST_DEPTHS)}."
        )
    if bb.WITH_SE or bb.WITH_NL:
        # FastReID's *_S50 recipes inherit WITH_NL from Base-AGW/SBS and its ResNeSt ignores it.
        logger.warning(
            "build_resnest_backbone ignores MODEL.BACKBONE.WITH_SE / WITH_NL (as FastReID does): "
            "split attention replaces them."
        )
    layers, stem_width = RESNEST_DEPTHS[depth]
    model = ResNeSt(layers, stem_width, bb.LAST_STRIDE, bb.NORM, bb.WITH_IBN)
    load_backbone_pretrain(
        model, cfg, key_mapper=lambda s: {k: v for k, v in s.items() if not k.startswith("fc.")}
    )
    return model
