"""Models: backbones, heads, losses and the meta-architectures that combine them."""

from . import backbones  # noqa: F401  (registers the backbones)
from .backbones.build import BACKBONE_REGISTRY, build_backbone
from .heads import REID_HEADS_REGISTRY, build_heads
from .meta_arch import META_ARCH_REGISTRY, build_model

__all__ = [
    "BACKBONE_REGISTRY",
    "REID_HEADS_REGISTRY",
    "META_ARCH_REGISTRY",
    "build_backbone",
    "build_heads",
    "build_model",
]
