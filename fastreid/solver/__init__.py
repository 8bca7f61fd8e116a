"""Optimizers, learning-rate schedules, gradient clipping and layer freezing."""

from .clip_grad import build_gradient_clipper, clip_gradients
from .freeze import set_layers_frozen
from .lr_scheduler import WarmupMainLR, build_lr_scheduler, warmup_factor_at_iter
from .optimizer import build_optimizer, get_default_optimizer_params, optimizer_names

__all__ = [
    "build_optimizer",
    "get_default_optimizer_params",
    "optimizer_names",
    "build_lr_scheduler",
    "WarmupMainLR",
    "warmup_factor_at_iter",
    "build_gradient_clipper",
    "clip_gradients",
    "set_layers_frozen",
]
