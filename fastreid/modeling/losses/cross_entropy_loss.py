"""Softmax cross entropy with label smoothing (fixed or adaptive epsilon)."""

from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F

__all__ = ["cross_entropy_loss"]


def cross_entropy_loss(
    pred_class_outputs: torch.Tensor,
    gt_classes: torch.Tensor,
    eps: float,
    alpha: float = 0.2,
) -> torch.Tensor:
    """Label-smoothed cross entropy, FastReID's definition.

    Args:
        pred_class_outputs: logits ``(B, C)``.
        gt_classes: class ids ``(B,)`` int64.
        eps: smoothing; the target distribution puts ``1 - eps`` on the true class and
            ``eps / (C - 1)`` on each other class. ``eps < 0`` selects adaptive smoothing:
            per sample ``eps = alpha * p_true`` (the model's softmax probability of the true
            class, not differentiated through), so confident samples are smoothed more.
        alpha: factor of the adaptive smoothing.

    Returns:
        scalar: the summed per-sample losses divided by the number of non-zero ones.
    """
    num_classes = pred_class_outputs.size(1)
    log_probs = F.log_softmax(pred_class_outputs, dim=1)
    with torch.no_grad():
        smooth: Union[float, torch.Tensor]
        if eps >= 0:
            smooth = float(eps)
        else:
            probs = log_probs.exp()
            smooth = alpha * probs.gather(1, gt_classes[:, None])
        off_value = smooth / max(num_classes - 1, 1)
        targets = torch.ones_like(log_probs) * off_value
        on_value = torch.ones_like(log_probs[:, :1]) * (1.0 - smooth)
        targets.scatter_(1, gt_classes[:, None], on_value)
    loss = (-targets * log_probs).sum(dim=1)
    with torch.no_grad():
        # Stays a tensor: reading the count on the host would sync the GPU every step.
        non_zero = (loss != 0).sum().clamp(min=1)
    return loss.sum() / non_zero
