"""Distances and cross-process gathering shared by the metric losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastreid.utils import comm

__all__ = ["euclidean_dist", "cosine_dist", "all_gather_with_grad"]


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


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward returns each rank the summed gradient of its own rows."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rows = tensor.size(0)
        return comm.all_gather_tensor(tensor.detach())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        start = comm.get_rank() * ctx.rows
        return comm.all_reduce_sum(grad)[start : start + ctx.rows]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` ``(N, ...)`` from all ranks along dim 0 in rank order.

    Gradients flow back to the rank that owns each row, summed over the ranks whose losses
    used it. With DDP's gradient averaging, a metric loss that mines over the gathered batch
    then takes exactly the step one process would take on the whole global batch (gathering
    with the other ranks' rows as constants would drop the gradient that flows through
    positives and negatives held by other ranks). Every rank must pass the same ``N``.
    Integer tensors (labels) are gathered without gradient. In a single process this
    returns ``tensor``.
    """
    if comm.get_world_size() == 1:
        return tensor
    if not tensor.is_floating_point():
        return comm.all_gather_tensor(tensor)
    return _AllGatherWithGrad.apply(tensor)
