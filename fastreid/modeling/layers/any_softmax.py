"""Classifier layers: turn class logits into (margin-adjusted, scaled) training outputs.

Each layer is built as ``Layer(num_classes, scale, margin)`` and called as
``layer(logits, targets)`` with ``logits`` ``(B, num_classes)`` and ``targets`` ``(B,)``
int64. For the margin-based layers the logits are cosine similarities in ``[-1, 1]``
(normalised feature times normalised class weight). The margin touches only the entry of
the true class of rows with a valid target (``targets >= 0``); rows with ``-1`` (a class held
by another process in model-parallel training) and ``targets=None`` get no margin. The result
is multiplied by the scale ``s``. Nothing is modified in place.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Linear", "CosSoftmax", "ArcSoftmax", "CircleSoftmax", "CLASSIFIER_LAYERS"]


def _target_mask(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B, C)`` mask, True at ``[i, targets[i]]`` for rows with ``targets[i] >= 0``."""
    valid = targets >= 0
    one_hot = F.one_hot(targets.clamp(min=0), logits.size(1)).bool()
    return one_hot & valid[:, None]


class Linear(nn.Module):
    """Plain softmax classifier: ``s * logits`` (no margin)."""

    # Heads feed this layer raw dot products; the margin layers below take cosines.
    cosine_logits: bool = False

    def __init__(self, num_classes: int, scale: float = 1.0, margin: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.s = float(scale)
        self.m = float(margin)

    def forward(self, logits: torch.Tensor, targets: Optional[torch.Tensor] = None) -> torch.Tensor:
        return logits * self.s

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, scale={self.s}, margin={self.m}"


class CosSoftmax(Linear):
    """CosFace (large margin cosine loss): ``s * (cos - m)`` at the true class, ``s * cos`` elsewhere."""

    cosine_logits = True

    def forward(self, logits: torch.Tensor, targets: Optional[torch.Tensor] = None) -> torch.Tensor:
        if targets is None:
            return logits * self.s
        mask = _target_mask(logits, targets)
        return (logits - mask.to(logits.dtype) * self.m) * self.s


class ArcSoftmax(Linear):
    """ArcFace (additive angular margin): ``s * cos(theta + m)`` at the true class."""

    cosine_logits = True

    def forward(self, logits: torch.Tensor, targets: Optional[torch.Tensor] = None) -> torch.Tensor:
        if targets is None:
            return logits * self.s
        mask = _target_mask(logits, targets)
        # acos has an infinite slope at +-1: stay just inside.
        theta = torch.acos(logits.clamp(-1.0 + 1e-7, 1.0 - 1e-7))
        return torch.where(mask, torch.cos(theta + self.m), logits) * self.s


class CircleSoftmax(Linear):
    """Circle loss classifier (Sun et al. 2020) with self-paced weights.

    True class: ``s * alpha_p * (cos - (1 - m))`` with ``alpha_p = relu(1 + m - cos)``;
    other classes: ``s * alpha_n * (cos - m)`` with ``alpha_n = relu(cos + m)``. The weights
    alpha are not differentiated through. Rows without a valid target use the negative form
    everywhere.
    """

    cosine_logits = True

    def forward(self, logits: torch.Tensor, targets: Optional[torch.Tensor] = None) -> torch.Tensor:
        if targets is None:
            return logits * self.s
        alpha_p = (1.0 + self.m - logits.detach()).clamp(min=0.0)
        alpha_n = (logits.detach() + self.m).clamp(min=0.0)
        logits_p = alpha_p * (logits - (1.0 - self.m))
        logits_n = alpha_n * (logits - self.m)
        mask = _target_mask(logits, targets)
        return torch.where(mask, logits_p, logits_n) * self.s


CLASSIFIER_LAYERS = {cls.__name__: cls for cls in (Linear, CosSoftmax, ArcSoftmax, CircleSoftmax)}
# Lower-case spellings used by older FastReID configs.
CLASSIFIER_LAYERS.update(
    {
        "linear": Linear,
        "cosSoftmax": CosSoftmax,
        "arcSoftmax": ArcSoftmax,
        "circleSoftmax": CircleSoftmax,
    }
)
