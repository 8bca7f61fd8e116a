"""Softmax focal loss (Lin et al. 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["focal_loss"]


def focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """``-alpha * (1 - p_t) ** gamma * log(p_t)`` with ``p_t`` the softmax probability of the
    true class.

    Args:
        input: logits ``(B, C)``; target: class ids ``(B,)``.
        reduction: "mean", "sum" or "none" (per-sample ``(B,)``).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(
            f"focal_loss reduction must be 'mean', 'sum' or 'none', got {reduction!r}."
        )
    log_p = F.log_softmax(input, dim=1).gather(1, target[:, None])[:, 0]
    p = log_p.exp()
    loss = -alpha * (1.0 - p).pow(gamma) * log_p
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
