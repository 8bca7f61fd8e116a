"""Backbones: registered builders ``fn(cfg) -> nn.Module`` returning feature maps."""

from .build import BACKBONE_REGISTRY, build_backbone, check_feat_dim
from .resnet import ResNet, build_resnet_backbone, build_resnext_backbone

__all__ = [
    "BACKBONE_REGISTRY",
    "build_backbone",
    "check_feat_dim",
    "ResNet",
    "build_resnet_backbone",
    "build_resnext_backbone",
]
