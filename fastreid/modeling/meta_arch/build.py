"""The meta-architecture registry and ``build_model``."""

from __future__ import annotations

import logging
import shutil

import torch
from torch import nn

from fastreid.config import CfgNode
from fastreid.utils.env import resolve_device
from fastreid.utils.registry import Registry

__all__ = ["META_ARCH_REGISTRY", "build_model", "compile_backbone", "resolve_device"]

logger = logging.getLogger(__name__)

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
    if cfg.MODEL.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
        model.channels_last = True
    return model


def compile_backbone(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """``torch.compile`` the model's backbone in place (``MODEL.COMPILE``).

    Only the backbone: it holds nearly all the work, takes a plain tensor, and compiling it in
    place (``nn.Module.compile``) keeps the state-dict keys, so checkpoints do not change.
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(
            f"MODEL.COMPILE needs a meta-architecture with a `backbone`; "
            f"{type(model).__name__} has none. Set MODEL.COMPILE False."
        )
    if (
        backend == "inductor"
        and model.device.type == "cpu"
        and not any(shutil.which(c) for c in ("c++", "g++", "clang++"))
    ):
        raise RuntimeError(
            "MODEL.COMPILE on the CPU needs a C++ compiler (g++ or clang++) on the PATH; "
            "install one or set MODEL.COMPILE False."
        )
    backbone.compile(backend=backend)
    return model
