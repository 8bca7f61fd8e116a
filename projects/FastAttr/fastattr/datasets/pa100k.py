"""PA-100K (Liu et al. 2017): 100,000 pedestrian images, 26 binary attributes."""

from __future__ import annotations

import os
from typing import List

import numpy as np

from fastreid.data.datasets import DATASET_REGISTRY, resolve_datasets_root
from fastreid.data.datasets.bases import Item

from .bases import AttrDataset, attribute_item

__all__ = ["PA100K", "read_pa100k_annotation"]


def _strings(value: np.ndarray) -> List[str]:
    """A MATLAB cell array of strings as scipy loads it: one str per cell."""
    out = []
    for cell in np.asarray(value, dtype=object).reshape(-1):
        cell = np.asarray(cell).reshape(-1)
        out.append(str(cell[0]).strip() if cell.size else "")
    return out


def read_pa100k_annotation(path: str) -> dict:
    """``annotation.mat`` -> ``{"attributes": [26 names], "<split>": (names, labels (n, 26))}``
    for the splits train, val and test."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as error:  # noqa: BLE001 - scipy raises several types for a bad file
        raise ValueError(f"Cannot read the PA-100K annotation file {path}: {error}") from error
    keys = ["attributes"] + [
        f"{s}_{k}" for s in ("train", "val", "test") for k in ("images_name", "label")
    ]
    missing = [k for k in keys if k not in mat]
    if missing:
        raise KeyError(
            f"{path} lacks {missing}; PA-100K's annotation.mat holds attributes and "
            "{train,val,test}_images_name / _label."
        )
    result: dict = {"attributes": _strings(mat["attributes"])}
    for split in ("train", "val", "test"):
        names = _strings(mat[f"{split}_images_name"])
        labels = np.asarray(mat[f"{split}_label"], dtype=np.float32)
        if labels.shape != (len(names), len(result["attributes"])):
            raise ValueError(
                f"{path}: {split}_label has shape {labels.shape}, expected "
                f"({len(names)}, {len(result['attributes'])}) for {split}_images_name and "
                "attributes."
            )
        result[split] = (names, labels)
    return result


@DATASET_REGISTRY.register()
class PA100K(AttrDataset):
    """PA-100K: train 80k, val 10k, test 10k images. FastReID trains on ``train`` only;
    ``DATASETS.COMBINEALL True`` trains on train + val as the strong baseline does."""

    dataset_name = "pa100k"
    folder = "PA-100K"
    layout = """\
<root>/PA-100K/
    data/             000001.jpg ... 100000.jpg
    annotation.mat    attributes, {train,val,test}_images_name, {train,val,test}_label
"""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, self.folder)
        image_dir = os.path.join(self.data_dir, "data")
        mat_path = os.path.join(self.data_dir, "annotation.mat")
        self.check_exists([image_dir, mat_path], folder=self.data_dir)
        annotation = read_pa100k_annotation(mat_path)
        on_disk = set(os.listdir(image_dir))
        splits = {}
        for split in ("train", "val", "test"):
            names, labels = annotation[split]
            absent = [n for n in names if n not in on_disk]
            if absent:
                raise ValueError(
                    f"The annotation file {mat_path} does not match the images in {image_dir}: "
                    f"{len(absent)} of its {split} images are not there (e.g. {absent[:3]}). "
                    "Unpack all images into data/, or use the annotation.mat of this copy."
                )
            splits[split] = self._items(image_dir, names, labels)
        super().__init__(
            annotation["attributes"],
            splits["train"],
            splits["test"],
            val=splits["val"],
            combineall=combineall,
            verbose=verbose,
        )

    @staticmethod
    def _items(image_dir: str, names: List[str], labels: np.ndarray) -> List[Item]:
        return [attribute_item(os.path.join(image_dir, n), row) for n, row in zip(names, labels)]
