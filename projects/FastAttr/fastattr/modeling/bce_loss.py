"""Weighted binary cross-entropy for multi-label attributes."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..config import BCE_NORMALIZATIONS

__all__ = ["attribute_weights", "weighted_bce_loss"]


def attribute_weights(targets: torch.Tensor, positive_ratios: torch.Tensor) -> torch.Tensor:
    """Per-element weights ``(B, C)``: ``exp(1 - r_j)`` where the target is positive and
    ``exp(r_j)`` where it is negative, ``r_j`` the training positive ratio of attribute j.
    Rare positives weigh more, common ones less (the strong baseline's weighting)."""
    ratios = positive_ratios.to(targets.dtype).unsqueeze(0)
    return torch.where(targets > 0.5, torch.exp(1.0 - ratios), torch.exp(ratios))


def weighted_bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    positive_ratios: Optional[torch.Tensor] = None,
    norm: str = "nonzero_mean",
) -> torch.Tensor:
    """BCE on logits ``(B, C)`` against 0/1 targets ``(B, C)``, optionally weighted.

    Args:
        positive_ratios: ``(C,)`` training positive ratios; None = unweighted.
        norm: ``"nonzero_mean"`` (FastReID): sum / number of non-zero terms;
            ``"attribute_sum"`` (strong baseline): sum over attributes, mean over the batch.
    """
    if norm not in BCE_NORMALIZATIONS:
        raise ValueError(
            f"Unknown MODEL.LOSSES.BCE.NORM '{norm}'; choose one of {', '.join(BCE_NORMALIZATIONS)}."
        )
    targets = targets.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if positive_ratios is not None:
        loss = loss * attribute_weights(targets, positive_ratios)
    if norm == "attribute_sum":
        return loss.sum(dim=1).mean()
    # Counted on the device (no host sync); at least 1 so an all-zero loss stays 0.
    return loss.sum() / torch.count_nonzero(loss).clamp(min=1)
