"""The attribute dataset base: named binary attributes, items carrying a 0/1 target vector."""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence

import numpy as np
from tabulate import tabulate

from fastreid.data.datasets import ImageDataset
from fastreid.data.datasets.bases import Item, extras_of

__all__ = ["AttrDataset", "attribute_item", "positive_ratios", "check_same_attributes"]

logger = logging.getLogger(__name__)


def attribute_item(path: str, targets: Sequence[float]) -> Item:
    """An item whose target is an attribute vector: no identity, no camera."""
    return (path, None, None, {"targets": [float(t) for t in targets]})


def positive_ratios(items: Sequence[Item]) -> np.ndarray:
    """Fraction of ``items`` positive for each attribute, float32 ``(num_attributes,)``."""
    if not items:
        raise ValueError("Cannot compute attribute positive ratios of an empty training set.")
    targets = np.asarray([extras_of(item)["targets"] for item in items], dtype=np.float32)
    return (targets > 0.5).mean(axis=0).astype(np.float32)


def check_same_attributes(datasets: Sequence[AttrDataset]) -> List[str]:
    """The attribute names shared by ``datasets``; one error naming the difference otherwise."""
    first = datasets[0]
    for other in datasets[1:]:
        if list(other.attribute_names) != list(first.attribute_names):
            only_first = [n for n in first.attribute_names if n not in other.attribute_names]
            only_other = [n for n in other.attribute_names if n not in first.attribute_names]
            detail = (
                f"only in {type(first).__name__}: {only_first}; "
                f"only in {type(other).__name__}: {only_other}"
                if only_first or only_other
                else "same names in another order"
            )
            raise ValueError(
                f"DATASETS.NAMES combines {type(first).__name__} "
                f"({len(first.attribute_names)} attributes) and {type(other).__name__} "
                f"({len(other.attribute_names)} attributes) whose attribute names differ ({detail}). "
                "Train attribute datasets together only when they label the same attributes."
            )
    return list(first.attribute_names)


class AttrDataset(ImageDataset):
    """A pedestrian-attribute dataset: ``train``, ``val`` and ``test`` lists of
    :func:`attribute_item` items and ``attribute_names`` (one per vector entry).

    Every target is 0 or 1 (multi-class annotations are expanded into one-hot binary
    attributes by the readers). ``combineall`` adds ``val`` to ``train`` (the trainval split).
    The test loader reads ``test`` (all images are "queries"; see ``Dataset.test_items``).
    """

    def __init__(
        self,
        attribute_names: Sequence[str],
        train: List[Item],
        test: List[Item],
        val: Optional[List[Item]] = None,
        combineall: bool = False,
        verbose: bool = True,
    ) -> None:
        self.attribute_names: List[str] = list(attribute_names)
        self.val: List[Item] = list(val or [])
        for split, items in (("train", train), ("val", self.val), ("test", test)):
            self._check_targets(split, items)
        super().__init__(train, [], [], combineall=combineall, verbose=verbose, test=test)

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def _check_targets(self, split: str, items: List[Item]) -> None:
        if not items:
            return
        targets = np.asarray([extras_of(item)["targets"] for item in items], dtype=np.float32)
        if targets.ndim != 2 or targets.shape[1] != self.num_attributes:
            raise ValueError(
                f"{type(self).__name__} {split}: target vectors of shape {targets.shape[1:]} for "
                f"{self.num_attributes} attribute names."
            )
        if not np.isin(targets, (0.0, 1.0)).all():
            raise ValueError(
                f"{type(self).__name__} {split}: attribute targets must be 0 or 1, found "
                f"{sorted(set(np.unique(targets).tolist()) - {0.0, 1.0})[:5]}."
            )

    def combine_all(self) -> None:
        """Train on train + val (the strong baseline's trainval); test stays apart."""
        if not self.val:
            logger.warning(
                "DATASETS.COMBINEALL: %s has no val split; training on train only.",
                type(self).__name__,
            )
        self.train.extend(self.val)

    def summary_table(self) -> str:
        rows = [
            [split, len(items), self.num_attributes]
            for split, items in (("train", self.train), ("val", self.val), ("test", self.test))
        ]
        return tabulate(
            rows, headers=["subset", "# images", "# attributes"], tablefmt="pipe", numalign="left"
        )
