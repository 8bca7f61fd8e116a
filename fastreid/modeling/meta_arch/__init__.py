"""Meta-architectures: whole models built by name from MODEL.META_ARCHITECTURE."""

from .baseline import Baseline
from .build import META_ARCH_REGISTRY, build_model, resolve_device
from .distiller import Distiller, DistillerOverhaul
from .mgn import MGN
from .moco import MoCo

__all__ = [
    "META_ARCH_REGISTRY",
    "build_model",
    "resolve_device",
    "Baseline",
    "MGN",
    "MoCo",
    "Distiller",
    "DistillerOverhaul",
]
