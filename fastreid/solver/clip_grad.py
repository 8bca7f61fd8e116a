"""Gradient clipping from SOLVER.CLIP_GRADIENTS."""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch
from torch import nn

from fastreid.config import CfgNode

__all__ = ["clip_gradients", "build_gradient_clipper"]

CLIP_TYPES = ("value", "norm")


def clip_gradients(
    parameters: Iterable[torch.Tensor], clip_type: str, clip_value: float, norm_type: float = 2.0
) -> Optional[torch.Tensor]:
    """Clip the gradients of ``parameters`` in place.

    ``"value"``: every gradient entry into ``[-clip_value, clip_value]``; ``"norm"``: rescale so
    the total ``norm_type``-norm is at most ``clip_value`` (returns the norm before clipping).
    With AMP's GradScaler, call ``scaler.unscale_(optimizer)`` first.
    """
    params = [p for p in parameters if p.grad is not None]
    if clip_type == "value":
        nn.utils.clip_grad_value_(params, clip_value)
        return None
    if clip_type == "norm":
        return nn.utils.clip_grad_norm_(params, clip_value, norm_type=norm_type)
    raise ValueError(
        f"Unknown SOLVER.CLIP_GRADIENTS.CLIP_TYPE '{clip_type}'; choose one of {', '.join(CLIP_TYPES)}."
    )


def build_gradient_clipper(cfg: CfgNode) -> Optional[Callable[[Iterable[torch.Tensor]], None]]:
    """``fn(parameters)`` that clips as SOLVER.CLIP_GRADIENTS says, or ``None`` when disabled."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not clip.ENABLED:
        return None
    if clip.CLIP_TYPE not in CLIP_TYPES:
        raise ValueError(
            f"Unknown SOLVER.CLIP_GRADIENTS.CLIP_TYPE '{clip.CLIP_TYPE}'; choose one of {', '.join(CLIP_TYPES)}."
        )

    def clipper(parameters: Iterable[torch.Tensor]) -> None:
        clip_gradients(parameters, clip.CLIP_TYPE, clip.CLIP_VALUE, clip.NORM_TYPE)

    return clipper
