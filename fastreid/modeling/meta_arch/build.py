"""The meta-architecture registry and ``build_model``."""

from __future__ import annotations

import logging

import torch
from torch import nn

from fastreid.config import CfgNode
from fastreid.utils.registry import Registry

__all__ = ["META_ARCH_REGISTRY", "build_model", "resolve_device"]

logger = logging.getLogger(__name__)

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """
Registry of meta-architectures (whole models), built as ``MetaArch(cfg)``.

``model(batched_inputs)`` returns a dict of named scalar losses in training and the
features ``(B, D)`` in eval.
"""


def resolve_device(name: str) -> torch.device:
    """``torch.device`` for ``MODEL.DEVICE``; CUDA falls back to the CPU (with a warning) when absent."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(
            f"MODEL.DEVICE {name!r} is not a device name; use 'cuda', 'cuda:N' or 'cpu'."
        ) from e
    if device.type == "cuda" and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE is %r but CUDA is not available; using the CPU.", name)
        return torch.device("cpu")
    return device


def build_model(cfg: CfgNode) -> nn.Module:
    """Build ``cfg.MODEL.META_ARCHITECTURE`` and move it to ``cfg.MODEL.DEVICE``."""
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    model.to(resolve_device(cfg.MODEL.DEVICE))
    return model
