"""Distances and cross-process gathering shared by the metric losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastreid.utils import comm

__all__ = ["euclidean_dist", "cosine_dist", "gather_with_local_grad"]


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise euclidean distances ``(N, M)`` between rows of ``x`` ``(N, D)`` and ``y`` ``(M, D)``."""
    xx = x.pow(2).sum(dim=1, keepdim=True)
    yy = y.pow(2).sum(dim=1, keepdim=True).t()
    dist = xx + yy - 2.0 * x @ y.t()
    # Rounding can make the squared distance of a row to itself slightly negative.
    return dist.clamp(min=1e-12).sqrt()


def cosine_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise ``2 - 2 cos`` ``(N, M)`` (the squared euclidean distance of the unit vectors)."""
    return 2.0 - 2.0 * F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()


def gather_with_local_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` ``(N, ...)`` from all ranks along dim 0 in rank order.

    The other ranks' parts are constants; this rank's part is ``tensor`` itself, so the
    gradient flows to the local inputs. Every rank must pass the same ``N``. In a single
    process this returns ``tensor``.
    """
    world_size = comm.get_world_size()
    if world_size == 1:
        return tensor
    gathered = comm.all_gather_tensor(tensor.detach())
    n = tensor.size(0)
    rank = comm.get_rank()
    return torch.cat([gathered[: rank * n], tensor, gathered[(rank + 1) * n :]], dim=0)
