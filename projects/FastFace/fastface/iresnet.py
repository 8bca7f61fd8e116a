"""iResNet (the "improved residual" network of ArcFace / insightface) for 112x112 faces.

Stem: conv3x3/1 (3->64) -> BN -> PReLU. Four stages of :class:`IBasicBlock`, each starting
with stride 2 (112 -> 56 -> 28 -> 14 -> 7). Block: BN -> conv3x3 -> BN -> PReLU ->
conv3x3(stride) -> BN [-> SE], plus a 1x1 conv + BN shortcut when the shape changes; no
activation after the sum. Then a last BN(512) and dropout. Output: ``(B, 512, 7, 7)`` for a
112x112 input. Module names follow FastReID's FastFace so its checkpoints load unchanged.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from fastreid.config import CfgNode
from fastreid.modeling.backbones.build import BACKBONE_REGISTRY
from fastreid.modeling.layers.se_layer import SELayer

__all__ = ["IBasicBlock", "IResNet", "IRESNET_DEPTHS", "build_iresnet_backbone"]

IRESNET_DEPTHS = {
    "18x": (2, 2, 2, 2),
    "34x": (3, 4, 6, 3),
    "50x": (3, 4, 14, 3),
    "100x": (3, 13, 30, 3),
    "200x": (6, 26, 60, 6),
}

# insightface's BN epsilon.
_BN_EPS = 1e-5


class IBasicBlock(nn.Module):
    """Pre-activation-style basic block of iResNet, optionally with squeeze-and-excitation on
    the residual branch (before the sum)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, with_se: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=_BN_EPS)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.se = SELayer(planes) if with_se else None
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes, eps=_BN_EPS),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        if self.se is not None:
            out = self.se(out)
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """iResNet backbone: ``(B, 3, H, W)`` normalised images -> ``(B, 512*w, H/16, W/16)``.

    Args:
        layers: blocks per stage (see :data:`IRESNET_DEPTHS`).
        dropout: dropout probability after the last BN.
        with_se: add squeeze-and-excitation (reduction 16) to every block.
        width: channels of the first stage (64 in iResNet; smaller values give thin variants
            for CPU experiments; the stages use width x (1, 2, 4, 8)).
    """

    def __init__(
        self,
        layers: Sequence[int],
        dropout: float = 0.0,
        with_se: bool = False,
        width: int = 64,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"iResNet needs 4 stages of >= 1 block, got {list(layers)}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MODEL.BACKBONE.DROPOUT must be in [0, 1), got {dropout}.")
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=_BN_EPS)
        self.prelu = nn.PReLU(width)
        planes = [width, width * 2, width * 4, width * 8]
        self.layer1 = self._make_layer(planes[0], layers[0], with_se)
        self.layer2 = self._make_layer(planes[1], layers[1], with_se)
        self.layer3 = self._make_layer(planes[2], layers[2], with_se)
        self.layer4 = self._make_layer(planes[3], layers[3], with_se)
        self.bn2 = nn.BatchNorm2d(planes[3], eps=_BN_EPS)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.feat_dim = planes[3]
        self.reset_parameters()

    def _make_layer(self, planes: int, blocks: int, with_se: bool) -> nn.Sequential:
        layers: List[nn.Module] = [IBasicBlock(self.inplanes, planes, 2, with_se)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes, 1, with_se) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def reset_parameters(self) -> None:
        # insightface's init: conv N(0, 0.1), norms 1 / 0.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.dropout(self.bn2(x))


def _depth_layers(depth: str) -> Sequence[int]:
    key = str(depth)
    if not key.endswith("x"):
        key += "x"
    if key not in IRESNET_DEPTHS:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {depth!r} is not an iResNet depth; choose one of "
            f"{', '.join(IRESNET_DEPTHS)}."
        )
    return IRESNET_DEPTHS[key]


@BACKBONE_REGISTRY.register()
def build_iresnet_backbone(cfg: CfgNode) -> nn.Module:
    """iResNet from ``MODEL.BACKBONE.DEPTH`` (18x/34x/50x/100x/200x), ``WITH_SE`` and
    ``DROPOUT`` (FastFace's key). A depth like ``18x-w16`` selects a thin variant whose first
    stage has 16 channels (CPU experiments).

    ``feat_dim`` is the channel count (512); the FaceHead flattens the 7x7 map, so the
    recipe's ``MODEL.BACKBONE.FEAT_DIM`` is 512 * 7 * 7 = 25088 (checked by FaceBaseline).
    """
    bb = cfg.MODEL.BACKBONE
    depth, _, width = str(bb.DEPTH).partition("-w")
    if width and not width.isdigit():
        raise KeyError(f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r}: the width after '-w' must be an int.")
    dropout = float(bb.get("DROPOUT", 0.0))
    return IResNet(
        _depth_layers(depth), dropout=dropout, with_se=bool(bb.WITH_SE), width=int(width or 64)
    )


# FastReID's r101_ir.yml names this builder, which FastReID never registered.
BACKBONE_REGISTRY.register(build_iresnet_backbone, name="build_resnetIR_backbone")
