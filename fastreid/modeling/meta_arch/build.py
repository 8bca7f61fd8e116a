"""The meta-architecture registry and ``build_model``."""

from __future__ import annotations

from torch import nn

from fastreid.config import CfgNode
from fastreid.utils.env import resolve_device
from fastreid.utils.registry import Registry

__all__ = ["META_ARCH_REGISTRY", "build_model", "resolve_device"]

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """
Registry of meta-architectures (whole models), built as ``MetaArch(cfg)``.

``model(batched_inputs)`` returns a dict of named scalar losses in training and the
features ``(B, D)`` in eval.
"""


def build_model(cfg: CfgNode) -> nn.Module:
    """Build ``cfg.MODEL.META_ARCHITECTURE`` and move it to ``cfg.MODEL.DEVICE``."""
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    model.to(resolve_device(cfg.MODEL.DEVICE))
    return model
