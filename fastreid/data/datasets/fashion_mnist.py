"""Fashion-MNIST (Xiao et al. 2017) read from its four idx files.

Items are ``("<images idx file>#<row>", class_name, None)``: images stay in the idx file and
are read by :class:`fastreid.data.common.ItemDataset` (or :func:`fastreid.data.idx.idx_image`).
"""

from __future__ import annotations

import os
from typing import List, Optional

from ..idx import IDX_REF_SEPARATOR, cached_idx, read_idx
from .bases import DatasetNotFoundError, ImageDataset, Item, resolve_datasets_root
from .registry import DATASET_REGISTRY

__all__ = ["FASHION_MNIST_CLASSES", "FashionMNIST", "fashion_mnist_folder", "load_fashion_mnist"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FMNIST_FOLDERS = ("fashion-mnist", "fashion_mnist", "FashionMNIST")
FASHION_MNIST_HELP = (
    "Get the four idx files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not): on Debian/Ubuntu "
    "`apt-get install dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist "
    "(then set DATASETS.ROOT /usr/share/datasets), or download them from "
    "https://github.com/zalandoresearch/fashion-mnist into <root>/fashion-mnist/."
)


def _find_file(folder: str, stem: str) -> Optional[str]:
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def fashion_mnist_folder(root: str) -> str:
    """The folder under ``root`` that holds the Fashion-MNIST idx files (``root`` itself,
    or its ``fashion-mnist`` subfolder); raises with how to get them when there is none."""
    root = resolve_datasets_root(root)
    candidates = [os.path.join(root, f) for f in _FMNIST_FOLDERS] + [root]
    for folder in candidates:
        if all(_find_file(folder, stem) for pair in _FMNIST_FILES.values() for stem in pair):
            return folder
    present = next((c for c in candidates if os.path.isdir(c)), root)
    missing = [
        stem for pair in _FMNIST_FILES.values() for stem in pair if not _find_file(present, stem)
    ]
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found under {root} (looked in {', '.join(candidates)}); "
        f"missing {', '.join(missing)}. {FASHION_MNIST_HELP}"
    )


def load_fashion_mnist(root: str, split: str) -> List[Item]:
    """Items ``("<images idx file>#<row>", class_name, None)`` of the ``train`` or ``test`` split."""
    folder = fashion_mnist_folder(root)
    images_stem, labels_stem = _FMNIST_FILES[split]
    images_file = _find_file(folder, images_stem)
    labels = read_idx(_find_file(folder, labels_stem))
    images = cached_idx(images_file)
    if images.ndim != 3 or len(images) != len(labels):
        raise DatasetNotFoundError(
            f"{images_file} holds {images.shape} images but the labels file {len(labels)} "
            "labels; the two files of a split must match."
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise DatasetNotFoundError(
            f"The labels of {folder} go up to {int(labels.max())}; Fashion-MNIST has 10 classes."
        )
    return [
        (f"{images_file}{IDX_REF_SEPARATOR}{i}", FASHION_MNIST_CLASSES[int(label)], None)
        for i, label in enumerate(labels)
    ]


@DATASET_REGISTRY.register()
class FashionMNIST(ImageDataset):
    """Fashion-MNIST (Xiao et al. 2017): 60 000 training and 10 000 test 28x28 grey images
    of 10 clothing classes, read from the four idx files in ``<root>/fashion-mnist/`` or
    ``<root>`` itself. ``train`` = the training split, ``test`` = the test split."""

    dataset_name = "fashionmnist"
    classes: List[str] = list(FASHION_MNIST_CLASSES)
    layout = """\
<root>/fashion-mnist/   (or <root> itself)
    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]
"""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        train = load_fashion_mnist(root, "train")
        test = load_fashion_mnist(root, "test")
        super().__init__(train, [], [], combineall=False, verbose=verbose, test=test)

    def _prefix(self, item: Item) -> Item:
        return item
