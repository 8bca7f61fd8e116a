"""Freeze / unfreeze named top-level layers (MODEL.FREEZE_LAYERS for SOLVER.FREEZE_ITERS)."""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence

import torch
from torch import nn

__all__ = ["set_layers_frozen"]

logger = logging.getLogger(__name__)


def set_layers_frozen(
    model: nn.Module,
    layer_names: Sequence[str],
    frozen: bool,
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> List[str]:
    """Freeze (``frozen=True``) or release the top-level children of ``model`` named in
    ``layer_names``.

    Frozen layers are put in eval mode (their BN statistics stop moving) and their optimizer
    groups (``group["name"]`` is ``<layer>`` or starts with ``<layer>.``) get ``freeze_status = "freeze"``, which
    the optimizers of :func:`fastreid.solver.build_optimizer` skip. Gradients still flow
    through frozen layers, so DDP and the parameters' ``requires_grad`` are untouched.
    Releasing sets training mode back (when the model is training) and ``"normal"``.
    Names that are not children of the model are logged and ignored. ``model`` may be
    wrapped in DDP. Returns the names that were found.
    """
    model = getattr(model, "module", model)
    children = dict(model.named_children())
    found = [n for n in layer_names if n in children]
    missing = [n for n in layer_names if n not in children]
    if missing:
        logger.warning(
            "MODEL.FREEZE_LAYERS names %s that %s does not have; its layers are: %s",
            missing,
            type(model).__name__,
            ", ".join(children),
        )
    for name in found:
        children[name].train(not frozen and model.training)
    if optimizer is not None:
        status = "freeze" if frozen else "normal"
        for group in optimizer.param_groups:
            group_name = group.get("name", "")
            if any(group_name == n or group_name.startswith(n + ".") for n in found):
                group["freeze_status"] = status
    return found
