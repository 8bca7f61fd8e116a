"""Backbones that wrap torchvision networks (their ImageNet weights load as they are)."""

from .efficientnet import build_efficientnet_backbone
from .mobilenet import (
    MobileNetFeatures,
    build_torchvision_mobilenetv2_backbone,
    build_torchvision_mobilenetv3_backbone,
)
from .regnet import RegNetFeatures, build_torchvision_regnet_backbone

__all__ = [
    "MobileNetFeatures",
    "RegNetFeatures",
    "build_efficientnet_backbone",
    "build_torchvision_mobilenetv2_backbone",
    "build_torchvision_mobilenetv3_backbone",
    "build_torchvision_regnet_backbone",
]
