"""Pairwise CosFace loss over the similarities inside a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .circle_loss import _NEG_INF, _pair_masks_and_similarity

__all__ = ["pairwise_cosface"]


def pairwise_cosface(
    embedding: torch.Tensor, targets: torch.Tensor, margin: float, gamma: float
) -> torch.Tensor:
    """CosFace on pairs: ``softplus(logsumexp(-gamma s_p) + logsumexp(gamma (s_n + m)))``.

    ``s_p`` / ``s_n``: cosine similarities of an anchor with its positives (itself excluded)
    and negatives. Args: embedding ``(N, D)``, targets ``(N,)``. Returns a scalar (mean over
    anchors).
    """
    is_pos, is_neg, sim = _pair_masks_and_similarity(embedding, targets)
    s_p = sim * is_pos
    s_n = sim * is_neg
    logit_p = -gamma * s_p + _NEG_INF * (1.0 - is_pos)
    logit_n = gamma * (s_n + margin) + _NEG_INF * (1.0 - is_neg)
    return F.softplus(torch.logsumexp(logit_p, dim=1) + torch.logsumexp(logit_n, dim=1)).mean()
