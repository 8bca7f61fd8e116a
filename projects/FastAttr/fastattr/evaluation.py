"""AttrEvaluator: label-based mA and instance-based accuracy / precision / recall / F1."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from tabulate import tabulate

from fastreid.evaluation import (
    EVALUATOR_REGISTRY,
    GatheringEvaluator,
    readable_rows,
    warn_dropped,
)
from fastreid.utils.file_io import atomic_write_text, save_figure

__all__ = ["AttrEvaluator", "attribute_metrics", "plot_attribute_recall"]

logger = logging.getLogger(__name__)

# FastReID's guard against empty denominators (it keeps 0/0 at 0).
EPS = 1e-20


def attribute_metrics(
    probabilities: np.ndarray, targets: np.ndarray, threshold: float = 0.5
) -> Dict[str, Any]:
    """FastReID's attribute metrics of ``probabilities`` ``(N, C)`` against 0/1 ``targets``.

    A prediction is positive when its probability is >= ``threshold``. Label-based, per
    attribute j: positive recall ``TP_j / P_j``, negative recall ``TN_j / N_j`` and
    ``mA = mean_j (pos_recall_j + neg_recall_j) / 2``. Instance-based, per image i then
    averaged: ``Accu = |pred ∩ gt| / |pred ∪ gt|``, ``Prec = |∩| / |pred|``,
    ``Recall = |∩| / |gt|``; ``F1 = 2 Prec Recall / (Prec + Recall)`` of those averages.
    Every ratio has ``1e-20`` added to its denominator, so 0/0 counts as 0.

    Returns percentages ``mA, Accu, Prec, Recall, F1`` and per-attribute arrays
    ``positive_recall``, ``negative_recall`` (fractions), ``positives``, ``negatives`` (counts).
    """
    pred = np.asarray(probabilities, dtype=np.float64) >= threshold
    gt = np.asarray(targets, dtype=np.float64) > 0.5
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(
            f"Attribute predictions {pred.shape} and targets {gt.shape} must both be (N, C)."
        )
    positives = gt.sum(axis=0)
    negatives = (~gt).sum(axis=0)
    positive_recall = (pred & gt).sum(axis=0) / (positives + EPS)
    negative_recall = (~pred & ~gt).sum(axis=0) / (negatives + EPS)
    mean_accuracy = float(np.mean((positive_recall + negative_recall) / 2))

    intersection = (pred & gt).sum(axis=1)
    union = (pred | gt).sum(axis=1)
    accuracy = float(np.mean(intersection / (union + EPS)))
    precision = float(np.mean(intersection / (pred.sum(axis=1) + EPS)))
    recall = float(np.mean(intersection / (gt.sum(axis=1) + EPS)))
    f1 = 2 * precision * recall / (precision + recall + EPS)
    return {
        "mA": 100 * mean_accuracy,
        "Accu": 100 * accuracy,
        "Prec": 100 * precision,
        "Recall": 100 * recall,
        "F1": 100 * f1,
        "positive_recall": positive_recall,
        "negative_recall": negative_recall,
        "positives": positives,
        "negatives": negatives,
    }


def plot_attribute_recall(
    names: Sequence[str],
    positive_recall: np.ndarray,
    negative_recall: np.ndarray,
    path: str,
    title: str = "",
) -> str:
    """Save a bar chart of each attribute's positive and negative recall (percent) to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * len(names)))
    ax.barh(y - 0.2, 100 * np.asarray(positive_recall), 0.4, label="positive recall")
    ax.barh(y + 0.2, 100 * np.asarray(negative_recall), 0.4, label="negative recall")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("recall (%)")
    ax.set_title(title)
    fig.legend(loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save_figure(fig, path)


@EVALUATOR_REGISTRY.register()
class AttrEvaluator(GatheringEvaluator):
    """Attribute metrics of a model whose eval outputs are probabilities ``(B, C)``.

    ``evaluate()`` returns ``Accu, Prec, Recall, F1, mA`` (percent) and ``metric = mA``,
    logs the per-attribute table, and with an ``output_dir`` writes
    ``attributes_<dataset>.csv`` and ``attribute_recall_<dataset>.png`` (positive / negative
    recall per attribute). ``per_attribute`` keeps the last table's rows.
    """

    def __init__(
        self,
        attribute_names: Optional[Sequence[str]] = None,
        threshold: float = 0.5,
        output_dir: Optional[str] = None,
        dataset_name: str = "",
    ) -> None:
        self.attribute_names = list(attribute_names) if attribute_names is not None else None
        self.threshold = float(threshold)
        self.output_dir = output_dir
        self.dataset_name = dataset_name
        self.per_attribute: List[Dict[str, Any]] = []
        self.reset()

    @classmethod
    def from_test_set(
        cls,
        cfg: Any,
        *,
        test_set: Any,
        num_query: int,
        dataset_name: str,
        output_dir: Optional[str] = None,
    ) -> AttrEvaluator:
        names = getattr(getattr(test_set, "source", None), "attribute_names", None)
        if names is not None and len(names) != cfg.MODEL.HEADS.NUM_CLASSES:
            raise ValueError(
                f"MODEL.HEADS.NUM_CLASSES={cfg.MODEL.HEADS.NUM_CLASSES} but {dataset_name} has "
                f"{len(names)} attributes; set it to {len(names)} (or 0 when training, to fill "
                "it in from the data)."
            )
        return cls(names, cfg.TEST.THRES, output_dir, dataset_name)

    def process(self, inputs: Dict, outputs: torch.Tensor) -> None:
        targets = inputs["targets"]
        if targets.dim() != 2:
            raise ValueError(
                f"AttrEvaluator needs attribute vectors as targets; {self.dataset_name or 'the'} "
                "test set gives class ids. Evaluate attribute datasets only, or choose another "
                "TEST.EVALUATOR."
            )
        if outputs.dim() != 2 or outputs.shape[1] != targets.shape[1]:
            raise ValueError(
                f"The model predicts {tuple(outputs.shape[1:])} values per image but "
                f"{self.dataset_name or 'the test set'} has {targets.shape[1]} attributes; set "
                f"MODEL.HEADS.NUM_CLASSES {targets.shape[1]}."
            )
        keep = readable_rows(inputs, len(outputs))  # unreadable images (SKIP_CORRUPT) left out
        self.keep(
            probabilities=outputs.detach().float().cpu()[keep],
            targets=targets.detach().float().cpu()[keep],
            dropped=torch.tensor([int((~keep).sum())]),
        )

    def compute(self, collected: Dict[str, torch.Tensor]) -> OrderedDict:
        warn_dropped(self.dataset_name, int(collected["dropped"].sum()))
        probs = collected["probabilities"].numpy()
        gts = collected["targets"].numpy()
        found = attribute_metrics(probs, gts, self.threshold)
        names = self.attribute_names or [f"attr{j}" for j in range(gts.shape[1])]
        self.per_attribute = [
            {
                "attribute": name,
                "positives": int(found["positives"][j]),
                "negatives": int(found["negatives"][j]),
                "positive_recall": 100 * float(found["positive_recall"][j]),
                "negative_recall": 100 * float(found["negative_recall"][j]),
                "mean_accuracy": 50
                * float(found["positive_recall"][j] + found["negative_recall"][j]),
            }
            for j, name in enumerate(names)
        ]
        self._report(names, found)
        results = OrderedDict((k, found[k]) for k in ("Accu", "Prec", "Recall", "F1", "mA"))
        results["metric"] = found["mA"]
        return results

    def _report(self, names: List[str], found: Dict[str, Any]) -> None:
        headers = list(self.per_attribute[0])
        rows = [list(row.values()) for row in self.per_attribute]
        logger.info(
            "Per-attribute results of %s (threshold %.2f):\n%s",
            self.dataset_name,
            self.threshold,
            tabulate(rows, headers=headers, tablefmt="pipe", floatfmt=".2f"),
        )
        if not self.output_dir:
            return
        stem = self.dataset_name or "test"
        lines = [",".join(headers)] + [
            ",".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) for row in rows
        ]
        atomic_write_text(
            os.path.join(self.output_dir, f"attributes_{stem}.csv"), "\n".join(lines) + "\n"
        )
        plot_attribute_recall(
            names,
            found["positive_recall"],
            found["negative_recall"],
            os.path.join(self.output_dir, f"attribute_recall_{stem}.png"),
            title=f"{stem}: mA {found['mA']:.2f}",
        )
