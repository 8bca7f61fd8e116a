"""Face verification metrics: 10-fold accuracy (LFW protocol), TAR@FAR, ROC picture, and
:class:`FaceEvaluator`.

Protocol (FastReID's / insightface's): L2-normalise the features, pair rows ``2k`` and
``2k+1``, score each pair by the squared Euclidean distance (0..4), sweep thresholds
``0, 0.01, ..., 3.99`` and call a pair "same" when its distance is below the threshold. The
pairs are cut into 10 contiguous folds; for each fold the threshold with the best accuracy
on the other 9 folds (first one on ties) is applied to the held-out fold. Accuracy is the
mean held-out accuracy, Threshold the mean chosen threshold.

TAR@FAR uses every pair at once, the way the core's ROC figures do: positives are the
genuine pairs, the score is minus the distance, and TAR is interpolated on the ROC at the
requested FAR (``fastreid.evaluation.roc.tpr_at_fpr``).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fastreid.evaluation.evaluator import EVALUATOR_REGISTRY, GatheringEvaluator
from fastreid.evaluation.roc import roc_curve_points, tpr_at_fpr
from fastreid.utils.file_io import save_figure

__all__ = [
    "pair_distances",
    "kfold_accuracy",
    "tar_at_far",
    "verification_metrics",
    "save_roc_plot",
    "FaceEvaluator",
]

logger = logging.getLogger(__name__)

THRESHOLDS = np.arange(0, 4, 0.01)
FARS = (1e-3, 1e-4)


def pair_distances(features: torch.Tensor) -> np.ndarray:
    """Squared Euclidean distance of the L2-normalised rows ``2k`` and ``2k+1``: ``(P,)``."""
    if features.shape[0] % 2:
        raise ValueError(f"Pair features need an even row count, got {features.shape[0]}.")
    feats = F.normalize(features.double(), dim=1)
    return ((feats[0::2] - feats[1::2]) ** 2).sum(1).numpy()


def _accuracy(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy at each threshold: ``(T,)``."""
    predict = dist[None, :] < thresholds[:, None]
    return (predict == issame[None, :]).mean(axis=1)


def kfold_accuracy(
    dist: np.ndarray, issame: np.ndarray, folds: int = 10, thresholds: np.ndarray = THRESHOLDS
) -> Dict[str, np.ndarray]:
    """Per-fold held-out accuracy and chosen threshold, plus mean TPR/FPR curves.

    Folds are contiguous (``KFold(folds, shuffle=False)``: the first ``P % folds`` folds get
    one pair more).
    """
    dist = np.asarray(dist, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    if len(dist) != len(issame):
        raise ValueError(f"{len(dist)} pair distances for {len(issame)} labels.")
    if len(dist) < folds:
        raise ValueError(
            f"{folds}-fold verification needs at least {folds} pairs, got {len(dist)}."
        )
    index = np.arange(len(dist))
    accs, best, tprs, fprs = [], [], [], []
    for test in np.array_split(index, folds):
        train = np.setdiff1d(index, test)
        best_idx = int(np.argmax(_accuracy(dist[train], issame[train], thresholds)))
        best.append(thresholds[best_idx])
        accs.append(_accuracy(dist[test], issame[test], thresholds[best_idx : best_idx + 1])[0])
        predict = dist[test][None, :] < thresholds[:, None]
        pos, neg = issame[test], ~issame[test]
        tprs.append((predict & pos).sum(1) / max(pos.sum(), 1))
        fprs.append((predict & neg).sum(1) / max(neg.sum(), 1))
    return {
        "accuracy": np.array(accs),
        "threshold": np.array(best),
        "tpr": np.mean(tprs, axis=0),
        "fpr": np.mean(fprs, axis=0),
    }


def tar_at_far(
    dist: np.ndarray, issame: np.ndarray, fars: Sequence[float] = FARS
) -> Dict[float, float]:
    """TAR (true accept rate) at each FAR, from the ROC over all pairs."""
    issame = np.asarray(issame, dtype=bool)
    if issame.all() or not issame.any():
        raise ValueError("TAR@FAR needs both genuine and impostor pairs.")
    return tpr_at_fpr(-dist[issame], -dist[~issame], fars)


def verification_metrics(features: torch.Tensor, issame: np.ndarray) -> OrderedDict[str, float]:
    """Accuracy / Threshold / TAR@FAR (percent) / metric from pair features."""
    dist = pair_distances(features)
    folds = kfold_accuracy(dist, issame)
    results: OrderedDict[str, float] = OrderedDict()
    results["Accuracy"] = float(folds["accuracy"].mean() * 100)
    results["Accuracy_std"] = float(folds["accuracy"].std() * 100)
    results["Threshold"] = float(folds["threshold"].mean())
    for far, tar in tar_at_far(dist, issame).items():
        results[f"TAR@FAR={far:g}"] = tar * 100
    results["metric"] = results["Accuracy"]
    return results


def save_roc_plot(dist: np.ndarray, issame: np.ndarray, path: str, title: str) -> str:
    """Write the ROC (TAR against FAR, log FAR axis) to ``path`` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    issame = np.asarray(issame, dtype=bool)
    fpr, tpr, _ = roc_curve_points(-dist[issame], -dist[~issame])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(np.maximum(fpr, 1e-6), tpr, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("FAR")
    ax.set_ylabel("TAR")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


@EVALUATOR_REGISTRY.register()
class FaceEvaluator(GatheringEvaluator):
    """Verification evaluator for a pair set (features of images ``2k``/``2k+1`` are pair k).

    Args:
        issame: ``(P,)`` bools, one per pair.
        dataset_name: used in the ROC file name ``<output_dir>/visualization/<name>_roc.png``.
        output_dir: where the ROC picture goes; ``None`` skips it.
    """

    def __init__(
        self, issame: Sequence[bool], dataset_name: str = "pairs", output_dir: Optional[str] = None
    ) -> None:
        self.issame = np.asarray(issame, dtype=bool)
        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.reset()

    @classmethod
    def from_test_set(
        cls,
        cfg,
        *,
        test_set,
        num_query: int,
        dataset_name: str,
        output_dir: Optional[str] = None,
    ) -> FaceEvaluator:
        """``TEST.EVALUATOR FaceEvaluator``: the pair labels come from the test set (its own
        ``issame``, or that of the registered pair set it was built from)."""
        issame = getattr(test_set, "issame", None)
        if issame is None:
            issame = getattr(getattr(test_set, "source", None), "issame", None)
        if issame is None:
            raise ValueError(
                f"{dataset_name} is not a pair set (no issame labels); FaceEvaluator evaluates "
                "face verification pairs only. Choose another TEST.EVALUATOR."
            )
        return cls(issame, dataset_name, output_dir)

    def process(self, inputs: Dict, outputs: torch.Tensor) -> None:
        self.keep(features=outputs.float())

    def compute(self, collected: Dict[str, torch.Tensor]) -> OrderedDict[str, float]:
        feats = collected["features"]  # rank order is image order (contiguous shards)
        if feats.shape[0] != 2 * len(self.issame):
            raise ValueError(
                f"{self.dataset_name}: {feats.shape[0]} features for {len(self.issame)} pairs; "
                "every pair needs 2 images in order."
            )
        results = verification_metrics(feats, self.issame)
        if self.output_dir:
            path = os.path.join(self.output_dir, "visualization", f"{self.dataset_name}_roc.png")
            save_roc_plot(pair_distances(feats), self.issame, path, self.dataset_name)
            logger.info("ROC of %s written to %s", self.dataset_name, path)
        return results
