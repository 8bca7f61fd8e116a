"""Small helpers over torch.distributed that also work in a single process."""

from __future__ import annotations

import functools
from typing import Any, List

import torch
import torch.distributed as dist

# The process group spanning the processes of this machine (set by engine.launch).
_LOCAL_PROCESS_GROUP = None


def is_dist_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist_initialized() else 0


def get_local_rank() -> int:
    if not is_dist_initialized() or _LOCAL_PROCESS_GROUP is None:
        return 0
    return dist.get_rank(group=_LOCAL_PROCESS_GROUP)


def set_local_process_group(group) -> None:
    global _LOCAL_PROCESS_GROUP
    _LOCAL_PROCESS_GROUP = group


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op in a single process."""
    if get_world_size() > 1:
        dist.barrier()


@functools.lru_cache
def _gloo_group():
    # Python objects travel over gloo so they never need to be on a GPU.
    if dist.get_backend() == "nccl":
        return dist.new_group(backend="gloo")
    return dist.group.WORLD


def all_gather(data: Any) -> List[Any]:
    """Gather a picklable object from every process; returns a list ordered by rank."""
    if get_world_size() == 1:
        return [data]
    output: List[Any] = [None] * get_world_size()
    dist.all_gather_object(output, data, group=_gloo_group())
    return output


def gather(data: Any, dst: int = 0) -> List[Any]:
    """Gather a picklable object on rank ``dst``; other ranks get an empty list."""
    if get_world_size() == 1:
        return [data]
    group = _gloo_group()
    if get_rank() == dst:
        output: List[Any] = [None] * get_world_size()
        dist.gather_object(data, output, dst=dst, group=group)
        return output
    dist.gather_object(data, None, dst=dst, group=group)
    return []


def all_gather_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equally-shaped tensors from all ranks along dim 0 (no gradient)."""
    if get_world_size() == 1:
        return tensor
    chunks = [torch.empty_like(tensor) for _ in range(get_world_size())]
    dist.all_gather(chunks, tensor.contiguous())
    return torch.cat(chunks, dim=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over all ranks (a new tensor; no gradient)."""
    if get_world_size() == 1:
        return tensor
    total = tensor.detach().clone().contiguous()
    dist.all_reduce(total)
    return total


def shared_random_seed() -> int:
    """A random integer that is the same on every process (for samplers)."""
    seed = int(torch.randint(2**31, (1,)).item())
    return all_gather(seed)[0]


def reduce_dict(input_dict: dict, average: bool = True) -> dict:
    """Reduce a dict of scalar tensors over all processes (result valid on every rank)."""
    world_size = get_world_size()
    if world_size < 2:
        return input_dict
    with torch.no_grad():
        names = sorted(input_dict)
        values = torch.stack([input_dict[k].detach().float() for k in names])
        dist.all_reduce(values)
        if average:
            values /= world_size
        return dict(zip(names, values))
