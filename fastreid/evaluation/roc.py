"""Verification figures: TPR at fixed FPR, the conventional way.

Genuine pairs (query and gallery of the same identity) are the positives, impostor pairs
the negatives, and the similarity (minus the distance) is the score. The ROC is swept
from the highest score down and TPR is interpolated linearly at each requested FPR.
Pairs the Market-1501 rule removes (:func:`fastreid.evaluation.protocol.market1501_keep`:
same identity and same camera, junk on either side) are left out. Only the highest-scoring impostors matter at small FPR, so the accumulator keeps all
genuine scores but only the top ``max(fprs)`` share of impostor scores: memory is
O(genuine pairs + max_fpr x impostor pairs), never O(Q x G).
"""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

import numpy as np
import torch

from .protocol import market1501_keep

__all__ = ["RocAccumulator", "roc_curve_points", "tpr_at_fpr", "DEFAULT_FPRS"]

DEFAULT_FPRS = (1e-4, 1e-3, 1e-2)


def roc_curve_points(
    genuine: np.ndarray, impostor: np.ndarray, num_impostor: int = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC vertices (fpr, tpr, thresholds), one per distinct score, from the top down.

    ``impostor`` may hold only the highest impostor scores when ``num_impostor`` (the
    total count) is given; the curve is then exact up to FPR = len(impostor) / num_impostor.
    The points match ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    num_impostor = len(impostor) if num_impostor is None else num_impostor
    if len(genuine) == 0 or num_impostor == 0:
        raise ValueError(
            f"A ROC needs genuine and impostor pairs; got {len(genuine)} genuine and "
            f"{num_impostor} impostor pairs."
        )
    scores = np.concatenate([genuine, impostor])
    is_genuine = np.concatenate([np.ones(len(genuine)), np.zeros(len(impostor))])
    order = np.argsort(-scores, kind="stable")
    scores, is_genuine = scores[order], is_genuine[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_pos = np.cumsum(is_genuine)[last_of_value]
    false_pos = (last_of_value + 1) - true_pos
    fpr = np.r_[0.0, false_pos / num_impostor]
    tpr = np.r_[0.0, true_pos / len(genuine)]
    thresholds = np.r_[np.inf, scores[last_of_value]]
    return fpr, tpr, thresholds


def tpr_at_fpr(
    genuine: np.ndarray,
    impostor: np.ndarray,
    fprs: Sequence[float] = DEFAULT_FPRS,
    num_impostor: int = None,
) -> Dict[float, float]:
    """TPR interpolated on the ROC at each FPR in ``fprs`` (fractions in [0, 1])."""
    fpr, tpr, _ = roc_curve_points(genuine, impostor, num_impostor)
    return {float(f): float(np.interp(f, fpr, tpr)) for f in fprs}


class RocAccumulator:
    """Collects genuine and top impostor similarity scores chunk by chunk.

    Call ``update(start, distances)`` for each chunk of query rows (as
    ``evaluate_rank(on_chunk=...)`` does), then ``compute()``.
    """

    def __init__(self, q_pids, g_pids, q_camids, g_camids, fprs=DEFAULT_FPRS) -> None:
        self.q_pids = torch.as_tensor(np.asarray(q_pids)).long()
        self.g_pids = torch.as_tensor(np.asarray(g_pids)).long()
        self.q_camids = torch.as_tensor(np.asarray(q_camids)).long()
        self.g_camids = torch.as_tensor(np.asarray(g_camids)).long()
        self.fprs = tuple(fprs)
        self.genuine = []
        self.impostor = torch.zeros(0)
        self.num_impostor = 0
        # Upper bound on the impostor pairs, so the kept share is known before the end.
        self._max_impostor = len(self.q_pids) * len(self.g_pids)

    def _keep_count(self) -> int:
        return int(math.ceil(max(self.fprs) * self._max_impostor)) + 1

    def update(self, start: int, distances: torch.Tensor) -> None:
        """``distances`` (C, G) for query rows ``start .. start + C``; not modified."""
        end = start + distances.shape[0]
        q_pids, q_camids = self.q_pids[start:end], self.q_camids[start:end]
        same_pid = q_pids[:, None] == self.g_pids[None, :]
        kept = market1501_keep(
            q_pids[:, None], q_camids[:, None], self.g_pids[None, :], self.g_camids[None, :]
        )
        scores = -distances.float()
        self.genuine.append(scores[same_pid & kept])
        impostor_mask = kept & ~same_pid
        self.num_impostor += int(impostor_mask.sum())
        impostor = scores[impostor_mask]
        keep = min(self._keep_count(), len(impostor))
        impostor = torch.topk(impostor, keep, sorted=False).values
        merged = torch.cat([self.impostor, impostor])
        keep = min(self._keep_count(), len(merged))
        self.impostor = torch.topk(merged, keep, sorted=False).values

    def compute(self) -> Dict[float, float]:
        """TPR at each FPR (fractions)."""
        genuine = torch.cat(self.genuine).numpy() if self.genuine else np.zeros(0)
        return tpr_at_fpr(genuine, self.impostor.numpy(), self.fprs, self.num_impostor)
