"""Keeping the processes of a DDP run on one model: the DDP wrapper, and averaging BN
statistics each epoch."""

from __future__ import annotations

from typing import List

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fastreid.utils import comm
from fastreid.utils.checkpoint import unwrap_model

__all__ = ["PER_RANK_ATTR", "average_buffers", "averaged_buffers", "wrap_ddp"]

PER_RANK_ATTR = "per_rank_state"


def averaged_buffers(model: nn.Module) -> List[torch.Tensor]:
    """The floating-point buffers :func:`average_buffers` averages: all of them except those
    of sub-modules that set ``per_rank_state = True`` (state meant to differ per process, e.g.
    a classifier shard), and the buffers they name in ``per_rank_buffers`` (a set of names)."""
    skip_prefixes: List[str] = []
    skip_names = set()
    for name, module in unwrap_model(model).named_modules():
        prefix = f"{name}." if name else ""
        if getattr(module, PER_RANK_ATTR, False):
            skip_prefixes.append(prefix)
        for buffer_name in getattr(module, "per_rank_buffers", ()):
            skip_names.add(prefix + buffer_name)
    return [
        b
        for name, b in unwrap_model(model).named_buffers()
        if b.is_floating_point()
        and name not in skip_names
        and not any(name.startswith(p) for p in skip_prefixes)
    ]


@torch.no_grad()
def average_buffers(model: nn.Module) -> None:
    """Average the floating-point buffers (BN running statistics) over all processes.

    DDP runs with ``broadcast_buffers=False`` (as FastReID), so each process's BN statistics
    follow its own batches. Averaging them at the end of each epoch makes every process
    evaluate, and every checkpoint hold, the same model. A no-op in a single process.
    Buffers meant to differ per process opt out (see :func:`averaged_buffers`).
    """
    if comm.get_world_size() == 1:
        return
    buffers = averaged_buffers(model)
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1).float() for b in buffers])
    torch.distributed.all_reduce(flat)
    flat /= comm.get_world_size()
    offset = 0
    for b in buffers:
        n = b.numel()
        b.copy_(flat[offset : offset + n].view_as(b))
        offset += n


def wrap_ddp(model: nn.Module, device: torch.device, find_unused_parameters: bool) -> nn.Module:
    """``model`` in DistributedDataParallel when several processes run (else as it is).
    Buffers are not broadcast each step: :func:`average_buffers` syncs them per epoch."""
    if comm.get_world_size() == 1:
        return model
    if device.type == "cuda":
        local = comm.get_local_rank()
        return DistributedDataParallel(
            model,
            device_ids=[local],
            output_device=local,
            broadcast_buffers=False,
            find_unused_parameters=find_unused_parameters,
        )
    return DistributedDataParallel(
        model, broadcast_buffers=False, find_unused_parameters=find_unused_parameters
    )
