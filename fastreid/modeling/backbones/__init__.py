"""Backbones: registered builders ``fn(cfg) -> nn.Module`` returning feature maps."""

from .build import BACKBONE_REGISTRY, build_backbone, check_feat_dim
from .effnet import EffNet, build_effnet_backbone
from .mobilenetv2 import MobileNetV2, build_mobilenetv2_backbone
from .mobilenetv3 import MobileNetV3, build_mobilenetv3_backbone
from .osnet import OSNet, build_osnet_backbone
from .pretrained import LoadReport, load_backbone_pretrain, load_pretrained_weights
from .pycls_regnet import RegNet, build_regnet_backbone
from .repvgg import RepVGG, build_repvgg_backbone
from .resnest import ResNeSt, build_resnest_backbone
from .resnet import ResNet, build_resnet_backbone, build_resnext_backbone
from .shufflenet import ShuffleNetV2, build_shufflenetv2_backbone
from .small_resnet import SmallResNet, build_small_resnet_backbone
from .torchvision import (
    MobileNetFeatures,
    RegNetFeatures,
    build_efficientnet_backbone,
    build_torchvision_mobilenetv2_backbone,
    build_torchvision_mobilenetv3_backbone,
    build_torchvision_regnet_backbone,
)
from .vit import VisionTransformer, build_vit_backbone

__all__ = [
    "BACKBONE_REGISTRY",
    "build_backbone",
    "check_feat_dim",
    "EffNet",
    "LoadReport",
    "load_backbone_pretrain",
    "load_pretrained_weights",
    "MobileNetFeatures",
    "MobileNetV2",
    "MobileNetV3",
    "OSNet",
    "RegNet",
    "RegNetFeatures",
    "RepVGG",
    "ResNeSt",
    "ResNet",
    "ShuffleNetV2",
    "SmallResNet",
    "VisionTransformer",
    "build_effnet_backbone",
    "build_efficientnet_backbone",
    "build_mobilenetv2_backbone",
    "build_mobilenetv3_backbone",
    "build_osnet_backbone",
    "build_regnet_backbone",
    "build_shufflenetv2_backbone",
    "build_small_resnet_backbone",
    "build_torchvision_mobilenetv2_backbone",
    "build_torchvision_mobilenetv3_backbone",
    "build_torchvision_regnet_backbone",
    "build_repvgg_backbone",
    "build_resnest_backbone",
    "build_resnet_backbone",
    "build_resnext_backbone",
    "build_vit_backbone",
]
