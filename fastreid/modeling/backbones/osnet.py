"""OSNet (omni-scale network, Zhou et al.) x1_0 / x0_75 / x0_5 / x0_25, optionally with IBN.

Module names follow the authors' layout (``conv1``, ``conv2``..``conv5``, ``conv2a``, ``gate``),
which FastReID keeps, so their ImageNet checkpoints load.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from .build import BACKBONE_REGISTRY
from .pretrained import load_backbone_pretrain

__all__ = ["OSNet", "OSBlock", "build_osnet_backbone"]

OSNET_CHANNELS = {
    "x1_0": [64, 256, 384, 512],
    "x0_75": [48, 192, 288, 384],
    "x0_5": [32, 128, 192, 256],
    "x0_25": [16, 64, 96, 128],
}


class ConvLayer(nn.Module):
    """Conv + (instance or batch) norm + ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bn_norm: str = "BN",
        instance_norm: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        if instance_norm:
            self.bn = nn.InstanceNorm2d(out_channels, affine=True)
        else:
            self.bn = get_norm(bn_norm, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1(nn.Module):
    """1x1 conv + norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, bn_norm: str = "BN") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = get_norm(bn_norm, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1Linear(nn.Module):
    """1x1 conv + norm, no activation."""

    def __init__(self, in_channels: int, out_channels: int, bn_norm: str = "BN") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = get_norm(bn_norm, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class LightConv3x3(nn.Module):
    """Pointwise 1x1 then depthwise 3x3 conv, norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, bn_norm: str = "BN") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, padding=1, bias=False, groups=out_channels
        )
        self.bn = get_norm(bn_norm, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """Unified aggregation gate: per-channel sigmoid weights from global context."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)
        self.gate_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc2(self.relu(self.fc1(self.global_avgpool(x))))
        return x * self.gate_activation(w)


class OSBlock(nn.Module):
    """Omni-scale residual block: four streams of 1..4 light 3x3 convs fused by a shared gate.

    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bn_norm: str = "BN",
        instance_norm: bool = False,
        bottleneck_reduction: int = 4,
    ) -> None:
        super().__init__()
        mid = out_channels // bottleneck_reduction
        self.conv1 = Conv1x1(in_channels, mid, bn_norm)
        self.conv2a = LightConv3x3(mid, mid, bn_norm)
        self.conv2b = nn.Sequential(*[LightConv3x3(mid, mid, bn_norm) for _ in range(2)])
        self.conv2c = nn.Sequential(*[LightConv3x3(mid, mid, bn_norm) for _ in range(3)])
        self.conv2d = nn.Sequential(*[LightConv3x3(mid, mid, bn_norm) for _ in range(4)])
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, out_channels, bn_norm)
        self.downsample = (
            Conv1x1Linear(in_channels, out_channels, bn_norm)
            if in_channels != out_channels
            else None
        )
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        streams = (self.conv2a(x1), self.conv2b(x1), self.conv2c(x1), self.conv2d(x1))
        x2 = sum(self.gate(s) for s in streams)
        out = self.conv3(x2) + (x if self.downsample is None else self.downsample(x))
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


class OSNet(nn.Module):
    """OSNet trunk. ``(B, 3, H, W) -> (B, channels[3], H/16, W/16)``.

    Args:
        channels: widths of the stem and of stages 2-4, e.g. ``[64, 256, 384, 512]``.
        bn_norm: norm name for ``get_norm``.
        with_ibn: instance norm in the stem and after the blocks of stage 2 (FastReID's
            OSNet-IBN: stages 3-4 stay batch-normalised).
    """

    def __init__(self, channels: List[int], bn_norm: str = "BN", with_ibn: bool = False) -> None:
        super().__init__()
        layers = [2, 2, 2]
        self.conv1 = ConvLayer(3, channels[0], 7, 2, 3, bn_norm, instance_norm=with_ibn)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._make_stage(channels[0], channels[1], layers[0], bn_norm, True, with_ibn)
        self.conv3 = self._make_stage(channels[1], channels[2], layers[1], bn_norm, True, False)
        self.conv4 = self._make_stage(channels[2], channels[3], layers[2], bn_norm, False, False)
        self.conv5 = Conv1x1(channels[3], channels[3], bn_norm)
        self.feat_dim = int(channels[3])
        self._init_params()

    @staticmethod
    def _make_stage(
        in_channels: int,
        out_channels: int,
        blocks: int,
        bn_norm: str,
        reduce_spatial_size: bool,
        instance_norm: bool,
    ) -> nn.Sequential:
        layers: List[nn.Module] = [OSBlock(in_channels, out_channels, bn_norm, instance_norm)]
        for _ in range(1, blocks):
            layers.append(OSBlock(out_channels, out_channels, bn_norm, instance_norm))
        if reduce_spatial_size:
            layers.append(
                nn.Sequential(Conv1x1(out_channels, out_channels, bn_norm), nn.AvgPool2d(2, 2))
            )
        return nn.Sequential(*layers)

    def _init_params(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv4(self.conv3(self.conv2(x)))
        return self.conv5(x)


def _drop_classifier(state):
    return {k: v for k, v in state.items() if not k.startswith(("classifier.", "fc."))}


@BACKBONE_REGISTRY.register()
def build_osnet_backbone(cfg: CfgNode) -> OSNet:
    """OSNet from ``MODEL.BACKBONE``: DEPTH x1_0 (FEAT_DIM 512) / x0_75 (384) / x0_5 (256) /
    x0_25 (128), WITH_IBN, NORM, PRETRAIN_PATH. Its output stride is fixed at 16."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH)
    if depth not in OSNET_CHANNELS:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {depth!r} is not an OSNet width; choose one of "
            f"{', '.join(OSNET_CHANNELS)}."
        )
    model = OSNet(OSNET_CHANNELS[depth], bb.NORM, bb.WITH_IBN)
    load_backbone_pretrain(model, cfg, key_mapper=_drop_classifier)
    return model
