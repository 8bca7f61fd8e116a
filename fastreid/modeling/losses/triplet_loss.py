"""Triplet loss with batch-hard or softmax-weighted mining (Hermans et al. 2017)."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from .utils import all_gather_with_grad, cosine_dist, euclidean_dist

__all__ = ["triplet_loss", "hard_example_mining", "weighted_example_mining"]


def hard_example_mining(
    dist_mat: torch.Tensor, is_pos: torch.Tensor, is_neg: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per anchor (row), the farthest positive and the closest negative: two ``(N,)`` tensors.

    ``dist_mat``, ``is_pos``, ``is_neg``: ``(N, M)``; the masks are float 0/1.
    """
    dist_ap = (dist_mat * is_pos).max(dim=1)[0]
    dist_an = (dist_mat * is_neg + is_pos * 1e9).min(dim=1)[0]
    return dist_ap, dist_an


def _softmax_weights(dist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax of ``dist`` over the entries where ``mask`` is 1, per row (0 elsewhere).

    The row maximum is taken over the masked entries only, so the weights sum to 1 however
    large the distances are (rows with an empty mask get all-zero weights).
    """
    masked = dist.masked_fill(mask == 0, float("-inf"))
    max_v = masked.max(dim=1, keepdim=True)[0]
    max_v = torch.where(torch.isfinite(max_v), max_v, torch.zeros_like(max_v)).detach()
    exp = torch.exp(masked - max_v)
    return exp / exp.sum(dim=1, keepdim=True).clamp(min=1e-12)


def weighted_example_mining(
    dist_mat: torch.Tensor, is_pos: torch.Tensor, is_neg: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Softmax-weighted positive / negative distances per anchor (two ``(N,)`` tensors).

    Far positives get weights ``softmax(d)`` over the positives, close negatives
    ``softmax(-d)`` over the negatives. (FastReID shifts by a maximum that includes the
    masked-out zeros and adds 1e-6 to the sum, so with large distances its negative weights
    vanish; here they are an exact softmax.)
    """
    dist_ap = dist_mat * is_pos
    dist_an = dist_mat * is_neg
    weights_ap = _softmax_weights(dist_ap, is_pos)
    weights_an = _softmax_weights(-dist_an, is_neg)
    return (dist_ap * weights_ap).sum(dim=1), (dist_an * weights_an).sum(dim=1)


def triplet_loss(
    embedding: torch.Tensor,
    targets: torch.Tensor,
    margin: float,
    norm_feat: bool,
    hard_mining: bool,
) -> torch.Tensor:
    """Triplet loss over a P x K batch.

    Args:
        embedding: features ``(N, D)``.
        targets: identity ids ``(N,)``.
        margin: ``> 0``: ``mean(relu(d_ap - d_an + margin))``; ``0``: soft margin
            ``mean(log(1 + exp(d_ap - d_an)))``.
        norm_feat: cosine distance ``2 - 2 cos`` instead of the euclidean distance.
        hard_mining: batch-hard mining; otherwise softmax-weighted mining.

    With several processes, each local anchor is compared with the embeddings of all ranks
    (other ranks' embeddings carry no gradient).

    Returns:
        scalar loss.
    """
    all_embedding = all_gather_with_grad(embedding)
    all_targets = all_gather_with_grad(targets)

    dist_fn = cosine_dist if norm_feat else euclidean_dist
    dist_mat = dist_fn(embedding, all_embedding)

    is_pos = (targets[:, None] == all_targets[None, :]).to(dist_mat.dtype)
    is_neg = 1.0 - is_pos

    if hard_mining:
        dist_ap, dist_an = hard_example_mining(dist_mat, is_pos, is_neg)
    else:
        dist_ap, dist_an = weighted_example_mining(dist_mat, is_pos, is_neg)

    y = torch.ones_like(dist_an)
    if margin > 0:
        return F.margin_ranking_loss(dist_an, dist_ap, y, margin=margin)
    gap = dist_an - dist_ap
    # When exp overflows (an infinite soft-margin loss), fall back to a hinge with FastReID's
    # default margin. The choice is made on the device (torch.where), so the step never waits
    # for the GPU to read the loss; the overflowing input is zeroed in the soft-margin branch
    # so that its gradient stays finite (0, not NaN) where the hinge is taken.
    with torch.no_grad():
        overflow = torch.isinf(F.soft_margin_loss(gap, y))
    soft = F.soft_margin_loss(torch.where(overflow, torch.zeros_like(gap), gap), y)
    hinge = F.margin_ranking_loss(dist_an, dist_ap, y, margin=0.3)
    return torch.where(overflow, hinge, soft)
