"""Transforms built from ``INPUT.*`` (torchvision v2 over uint8 tensors) and RandomPatch."""

from .build import build_transforms
from .random_patch import RandomPatch

__all__ = ["RandomPatch", "build_transforms"]
