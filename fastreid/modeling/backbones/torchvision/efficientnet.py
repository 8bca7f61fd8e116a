"""EfficientNet-B0..B7 (torchvision) and EfficientNet-Lite0, returning feature maps."""

from __future__ import annotations

import re
from functools import partial
from typing import Dict

import torch
from torch import nn
from torchvision.models import efficientnet as tv_efficientnet
from torchvision.models.efficientnet import MBConv, MBConvConfig

from fastreid.config import CfgNode

from ..build import BACKBONE_REGISTRY
from ..pretrained import load_backbone_pretrain
from .mobilenet import MobileNetFeatures, drop_classifier
from .utils import norm_factory, set_last_stride

__all__ = ["build_efficientnet_backbone", "efficientnet_features", "lite_key_mapper"]

# EfficientNet-B0 stages (Tan & Le, Table 1): expand, kernel, stride, in, out, layers.
_B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]


# (width multiplier, depth multiplier) per variant (Tan & Le); lite0 is b0 without SE, ReLU6.
EFFICIENTNET_SCALES = {
    "b0": (1.0, 1.0),
    "b1": (1.0, 1.1),
    "b2": (1.1, 1.2),
    "b3": (1.2, 1.4),
    "b4": (1.4, 1.8),
    "b5": (1.6, 2.2),
    "b6": (1.8, 2.6),
    "b7": (2.0, 3.1),
    "lite0": (1.0, 1.0),
}


def _no_squeeze_excitation(*_: object, **__: object) -> nn.Module:
    return nn.Identity()


def efficientnet_features(variant: str = "b0", norm: str = "BN") -> nn.Sequential:
    """The ``features`` trunk of an EfficientNet built with torchvision's blocks.

    ``lite*`` variants drop squeeze-excitation and use ReLU6. Returns torchvision's layout
    (stem ``0``, stages ``1..7``, head ``8``), so its ImageNet weights load.
    """
    width, depth = EFFICIENTNET_SCALES[variant]
    lite = variant.startswith("lite")
    block = partial(MBConv, se_layer=_no_squeeze_excitation) if lite else MBConv
    setting = [MBConvConfig(*stage, width, depth, block=block) for stage in _B0_STAGES]
    momentum = 0.01 if lite or variant in ("b5", "b6", "b7") else 0.1
    net = tv_efficientnet.EfficientNet(
        setting, dropout=0.2, norm_layer=norm_factory(norm, eps=1e-3, momentum=momentum)
    )
    if lite:
        for module in net.features.modules():
            for name, child in module.named_children():
                if isinstance(child, nn.SiLU):
                    setattr(module, name, nn.ReLU6(inplace=True))
    return net.features


def _lite_block_index(setting=_B0_STAGES) -> Dict[int, str]:
    """Global block number -> ``features.<stage>.<index>`` prefix."""
    index, table = 0, {}
    for stage, (*_, layers) in enumerate(setting, start=1):
        for j in range(layers):
            table[index] = f"features.{stage}.{j}"
            index += 1
    return table


def lite_key_mapper(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map EfficientNet-Lite checkpoints in ``efficientnet_pytorch`` naming (``_conv_stem``,
    ``_blocks.N._expand_conv``, ...) onto torchvision's ``features.*`` names.

    Checkpoints already in torchvision naming pass through; the classifier is dropped.
    """
    if not any(k.startswith("_blocks.") for k in state):
        return drop_classifier(state)
    blocks = _lite_block_index()
    has_expand = {int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand", k))}
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("_fc."):
            continue
        top = {"_conv_stem": "features.0.0", "_bn0": "features.0.1"}
        top |= {"_conv_head": "features.8.0", "_bn1": "features.8.1"}
        head, _, rest = key.partition(".")
        if head in top:
            out[f"{top[head]}.{rest}"] = value
            continue
        match = re.match(r"_blocks\.(\d+)\.(_\w+)\.(.+)", key)
        if not match:
            out[key] = value
            continue
        number, part, rest = int(match.group(1)), match.group(2), match.group(3)
        shift = 1 if number in has_expand else 0
        # torchvision MBConv.block: [expand], depthwise, squeeze-excitation, project.
        where = {
            "_expand_conv": "0.0",
            "_bn0": "0.1",
            "_depthwise_conv": f"{shift}.0",
            "_bn1": f"{shift}.1",
            "_project_conv": f"{shift + 2}.0",
            "_bn2": f"{shift + 2}.1",
        }
        if part not in where:
            out[key] = value
            continue
        out[f"{blocks[number]}.block.{where[part]}.{rest}"] = value
    return out


@BACKBONE_REGISTRY.register()
def build_efficientnet_backbone(cfg: CfgNode) -> MobileNetFeatures:
    """EfficientNet from ``MODEL.BACKBONE``: DEPTH b0..b7 (torchvision) or lite0, LAST_STRIDE,
    NORM, PRETRAIN_PATH (torchvision-style, or ``efficientnet_pytorch``-style for lite0).
    FEAT_DIM: b0/b1/lite0 1280, b2 1408, b3 1536, b4 1792, b5 2048, b6 2304, b7 2560."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH).lower()
    if depth not in EFFICIENTNET_SCALES:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not an EfficientNet variant; choose one of "
            f"{', '.join(EFFICIENTNET_SCALES)}."
        )
    features = efficientnet_features(depth, bb.NORM)
    set_last_stride(features, bb.LAST_STRIDE)
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    model = MobileNetFeatures(features, convs[-1].out_channels)
    load_backbone_pretrain(model, cfg, key_mapper=lite_key_mapper)
    return model
