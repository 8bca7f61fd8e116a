"""Pairwise circle loss (Sun et al. 2020) over the similarities inside a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastreid.utils import comm

from .utils import all_gather_with_grad

__all__ = ["pairwise_circleloss"]

_NEG_INF = -99999999.0


def pairwise_circleloss(
    embedding: torch.Tensor, targets: torch.Tensor, margin: float, gamma: float
) -> torch.Tensor:
    """Circle loss on cosine similarities ``s`` of each anchor with the other samples.

    ``logit_p = -gamma * alpha_p * (s_p - (1 - m))`` with ``alpha_p = relu(1 + m - s_p)``,
    ``logit_n = gamma * alpha_n * (s_n - m)`` with ``alpha_n = relu(s_n + m)`` (alphas not
    differentiated through); per anchor ``softplus(logsumexp(logit_p) + logsumexp(logit_n))``,
    averaged. An anchor is not its own positive.

    Args:
        embedding: ``(N, D)``; targets: ``(N,)``; margin ``m``; gamma: scale.
    Returns:
        scalar loss.
    """
    is_pos, is_neg, sim = _pair_masks_and_similarity(embedding, targets)
    s_p = sim * is_pos
    s_n = sim * is_neg
    alpha_p = (1.0 + margin - s_p.detach()).clamp(min=0.0)
    alpha_n = (s_n.detach() + margin).clamp(min=0.0)
    logit_p = -gamma * alpha_p * (s_p - (1.0 - margin)) + _NEG_INF * (1.0 - is_pos)
    logit_n = gamma * alpha_n * (s_n - margin) + _NEG_INF * (1.0 - is_neg)
    return F.softplus(torch.logsumexp(logit_p, dim=1) + torch.logsumexp(logit_n, dim=1)).mean()


def _pair_masks_and_similarity(embedding: torch.Tensor, targets: torch.Tensor):
    """Float masks ``(N, M)`` of positives (self excluded) and negatives, and cosine similarities."""
    all_embedding = all_gather_with_grad(embedding)
    all_targets = all_gather_with_grad(targets)
    embedding = F.normalize(embedding, dim=1)
    sim = embedding @ F.normalize(all_embedding, dim=1).t()
    same = targets[:, None] == all_targets[None, :]
    # Column of each anchor itself among the gathered samples (rank order).
    offset = comm.get_rank() * embedding.size(0) if comm.get_world_size() > 1 else 0
    self_mask = torch.zeros_like(same)
    idx = torch.arange(embedding.size(0), device=embedding.device)
    self_mask[idx, idx + offset] = True
    is_pos = (same & ~self_mask).to(sim.dtype)
    is_neg = (~same).to(sim.dtype)
    return is_pos, is_neg, sim
