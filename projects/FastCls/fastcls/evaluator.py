"""ClsEvaluator: Top-1 / Top-5 accuracy, per-class accuracy and a confusion-matrix picture."""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tabulate import tabulate

from fastreid.config import configurable
from fastreid.evaluation import (
    EVALUATOR_REGISTRY,
    GatheringEvaluator,
    readable_rows,
    warn_dropped,
)
from fastreid.utils import comm
from fastreid.utils.file_io import atomic_write_text, save_figure

__all__ = ["ClsEvaluator", "classification_metrics", "save_confusion_matrix"]

logger = logging.getLogger("fastreid.projects.fastcls")  # under fastreid: reaches log.txt


def classification_metrics(
    topk_predictions: torch.Tensor, targets: torch.Tensor, num_classes: int, ks: Sequence[int]
) -> Dict[str, object]:
    """Accuracy metrics from ranked predictions.

    Args:
        topk_predictions: (N, k) class indices, best first, k >= max(ks).
        targets: (N,) true class indices.
        num_classes: C.
        ks: the Top-k accuracies to report (each <= C).

    Returns a dict: ``Top-k`` (percent) for each k, ``per_class`` (C,) accuracy in percent
    (NaN for a class without test images), ``mean_class`` (mean over classes with images)
    and ``confusion`` (C, C) counts, rows = true class, columns = top-1 prediction.
    """
    targets = targets.long()
    hits = topk_predictions == targets[:, None]
    result: Dict[str, object] = {}
    for k in ks:
        result[f"Top-{k}"] = hits[:, :k].any(dim=1).float().mean().item() * 100
    top1 = topk_predictions[:, 0].long()
    confusion = torch.bincount(targets * num_classes + top1, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes)
    support = confusion.sum(dim=1)
    per_class = confusion.diag().double() / support.clamp_min(1) * 100
    per_class[support == 0] = float("nan")
    result["per_class"] = per_class.numpy()
    result["mean_class"] = float(np.nanmean(per_class.numpy())) if (support > 0).any() else 0.0
    result["confusion"] = confusion.numpy()
    return result


def save_confusion_matrix(
    confusion: np.ndarray, class_names: Sequence[str], path: str, title: str = ""
) -> str:
    """Draw the confusion matrix (rows normalised to the true class) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = len(class_names)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.45 * num, 40)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if num <= 40:  # beyond that the labels overlap; the colours still tell the story
        ax.set_xticks(range(num), labels=class_names, rotation=60, ha="right")
        ax.set_yticks(range(num), labels=class_names)
        if num <= 20:
            for i in range(num):
                for j in range(num):
                    if confusion[i, j]:
                        ax.text(
                            j,
                            i,
                            int(confusion[i, j]),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black",
                        )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix")
    fig.tight_layout()
    return save_figure(fig, path)


@EVALUATOR_REGISTRY.register()
class ClsEvaluator(GatheringEvaluator):
    """Classification accuracy of a model whose eval output is class logits (``ClasHead``).

    Results (percent): ``Top-1``, ``Top-5`` (only with more than 5 classes), ``mean class
    accuracy``, ``Acc@1`` (FastReID's name, = Top-1) and ``metric`` = Top-1. The per-class accuracy is logged as a table and kept in
    :attr:`per_class_accuracy`; with an ``output_dir`` it is also written to
    ``<name>_per_class_accuracy.csv`` next to ``<name>_confusion_matrix.png``. Predictions
    are gathered from every process; other processes return an empty dict.

    Two doors: ``ClsEvaluator(class_names, output_dir)`` and
    ``ClsEvaluator(cfg, num_query, output_dir, class_names=...)``.
    """

    @configurable
    def __init__(
        self,
        class_names: Optional[Sequence[str]] = None,
        output_dir: Optional[str] = None,
        *,
        name: str = "test",
        plot: bool = True,
    ) -> None:
        self.class_names: Optional[List[str]] = list(class_names) if class_names else None
        self.output_dir = output_dir
        self.name = name
        self.plot = plot
        self.per_class_accuracy: Dict[str, float] = {}
        self.confusion: Optional[np.ndarray] = None
        self.reset()

    @classmethod
    def from_config(
        cls,
        cfg,
        num_query: int = 0,
        output_dir: Optional[str] = None,
        class_names: Optional[Sequence[str]] = None,
        name: str = "test",
    ) -> Dict:
        return {"class_names": class_names, "output_dir": output_dir, "name": name}

    @classmethod
    def from_test_set(
        cls,
        cfg,
        *,
        test_set,
        num_query: int,
        dataset_name: str,
        output_dir: Optional[str] = None,
    ) -> ClsEvaluator:
        """Built by ``DefaultTrainer.build_evaluator`` (``TEST.EVALUATOR ClsEvaluator``): class
        names from the test set (a ``ClsDataset``) or its registered dataset's ``classes``."""
        names = getattr(test_set, "class_names", None) or getattr(
            getattr(test_set, "source", None), "classes", None
        )
        return cls(names, output_dir, name=dataset_name)

    def process(self, inputs: Dict, outputs: torch.Tensor) -> None:
        """Keep the 5 best classes of each row of ``outputs`` (B, C logits) and ``targets``."""
        if "targets" not in inputs:
            raise KeyError(f"ClsEvaluator needs 'targets' in each batch; got {sorted(inputs)}.")
        if outputs.ndim != 2:
            raise ValueError(
                f"ClsEvaluator expects class logits (B, C); the model gave {tuple(outputs.shape)}. "
                "Use MODEL.HEADS.NAME ClasHead."
            )
        keep = readable_rows(inputs, len(outputs))  # unreadable images (SKIP_CORRUPT) left out
        k = min(5, outputs.shape[1])
        self.keep(
            topk=outputs.detach().float().topk(k, dim=1).indices.cpu()[keep],
            targets=torch.as_tensor(inputs["targets"]).reshape(-1).long().cpu()[keep],
            num_classes=torch.tensor([outputs.shape[1]]),
            dropped=torch.tensor([int((~keep).sum())]),
        )

    def compute(self, collected: Dict[str, torch.Tensor]) -> OrderedDict[str, float]:
        num_classes = int(collected["num_classes"].max())
        warn_dropped(self.name, int(collected["dropped"].sum()))
        predictions, labels = collected["topk"], collected["targets"]
        names = self.class_names or [str(i) for i in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(
                f"The model predicts {num_classes} classes but {len(names)} class names were "
                "given (idx2class.json); use the idx2class.json of the same training run."
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"Test labels range over {labels.min().item()}..{labels.max().item()}, outside the "
                f"model's {num_classes} classes."
            )
        ks = [1] + ([5] if num_classes > 5 else [])
        metrics = classification_metrics(predictions, labels, num_classes, ks)
        per_class = metrics["per_class"]
        self.per_class_accuracy = {n: float(a) for n, a in zip(names, per_class)}
        self.confusion = metrics["confusion"]
        support = self.confusion.sum(axis=1)
        table = tabulate(
            [[n, int(s), a] for n, s, a in zip(names, support, per_class)],
            headers=["class", "# images", "accuracy (%)"],
            tablefmt="pipe",
            floatfmt=".2f",
        )
        logger.info("Per-class accuracy on %s:\n%s", self.name, table)
        if self.output_dir and comm.is_main_process():
            stem = os.path.join(self.output_dir, re.sub(r"[^\w.-]+", "_", self.name))
            rows = [f'"{n}",{int(s)},{a:.4f}' for n, s, a in zip(names, support, per_class)]
            atomic_write_text(
                stem + "_per_class_accuracy.csv", "\n".join(["class,images,accuracy", *rows]) + "\n"
            )
            if self.plot:
                save_confusion_matrix(
                    self.confusion, names, stem + "_confusion_matrix.png", title=self.name
                )
        results: OrderedDict[str, float] = OrderedDict()
        for k in ks:
            results[f"Top-{k}"] = metrics[f"Top-{k}"]
        results["mean class accuracy"] = metrics["mean_class"]
        results["Acc@1"] = metrics["Top-1"]  # FastReID's FastClas name for Top-1
        results["metric"] = metrics["Top-1"]
        return results
