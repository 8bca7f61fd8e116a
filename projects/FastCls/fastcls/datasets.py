"""Classification datasets in the core registry: image folders (Hymenoptera) and Fashion-MNIST.

Items are ``(img_path, class_name, None)`` (no camera): ``train`` holds the training split and
``test`` the test split (the core's ``Dataset(test=...)``; query and gallery stay empty). Each
dataset lists its class names in ``classes`` (the label order: index i is ``classes[i]``).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from fastreid.data.datasets import DATASET_REGISTRY, ImageDataset, resolve_datasets_root
from fastreid.data.datasets.bases import DatasetNotFoundError, Item

from .idx import read_idx

__all__ = [
    "FASHION_MNIST_CLASSES",
    "ClsImageFolder",
    "FashionMNIST",
    "Hymenoptera",
    "IDX_REF_SEPARATOR",
    "EmptyClassFolderError",
    "idx_image",
    "load_fashion_mnist",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

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

# Images that live inside an idx file are named "<idx file>#<row>" in the item lists.
IDX_REF_SEPARATOR = "#"


class EmptyClassFolderError(DatasetNotFoundError):
    """A class folder of an image-folder dataset holds no image."""


@DATASET_REGISTRY.register()
class ClsImageFolder(ImageDataset):
    """Images in class folders: ``<root>/<folder>/<split>/<class>/*.jpg`` (torchvision's
    ImageFolder layout). The training split is ``train``; the test split is the first of
    ``val`` / ``test`` that exists.

    Use your own data by subclassing (``class Flowers(ClsImageFolder): folder = "flowers"``,
    registered with ``@DATASET_REGISTRY.register()``), or name the folder ``cls_folder``.
    """

    dataset_name = "clsfolder"
    folder = "cls_folder"
    train_split = "train"
    test_splits: Sequence[str] = ("val", "test")
    layout = """\
<root>/<folder>/
    train/<class name>/<image>     e.g. train/ants/0013035.jpg
    val/<class name>/<image>       (or test/); every class folder holds at least one image
"""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, self.folder)
        train_dir = os.path.join(self.data_dir, self.train_split)
        test_dirs = [os.path.join(self.data_dir, s) for s in self.test_splits]
        test_dir = next((d for d in test_dirs if os.path.isdir(d)), test_dirs[0])
        self.check_exists([train_dir, test_dir], folder=self.data_dir)
        train = self._parse(train_dir)
        test = self._parse(test_dir)
        self.classes: List[str] = sorted({item[1] for item in train})
        unknown = sorted({item[1] for item in test} - set(self.classes))
        if unknown:
            raise DatasetNotFoundError(
                f"The test split {test_dir} has classes the training split lacks: "
                f"{', '.join(unknown)}. Add a training folder for each, or remove them."
            )
        super().__init__(train, [], [], combineall=False, verbose=verbose, test=test)

    def _prefix(self, item: Item) -> Item:
        return item  # class names stay as they are: they are the labels users see

    @staticmethod
    def _parse(split_dir: str) -> List[Item]:
        items: List[Item] = []
        classes = sorted(
            n for n in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, n))
        )
        if not classes:
            raise EmptyClassFolderError(
                f"{split_dir} has no class folders; expected {split_dir}/<class name>/<image>."
            )
        for name in classes:
            folder = os.path.join(split_dir, name)
            files = sorted(
                f
                for f in os.listdir(folder)
                if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))
            )
            if not files:
                raise EmptyClassFolderError(
                    f"Class folder {folder} holds no image ({', '.join(IMAGE_EXTENSIONS)}); "
                    "add images or remove the folder."
                )
            items.extend((os.path.join(folder, f), name, None) for f in files)
        return items


@DATASET_REGISTRY.register()
class Hymenoptera(ClsImageFolder):
    """Ants and bees of the PyTorch transfer-learning tutorial (``hymenoptera_data``)."""

    dataset_name = "hymenoptera"
    folder = "hymenoptera_data"
    layout = """\
<root>/hymenoptera_data/
    train/{ants,bees}/*.jpg
    val/{ants,bees}/*.jpg
"""


# --------------------------------------------------------------------- Fashion-MNIST
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

# Decoded idx files of this process, by path (a training run reads each once).
_IDX_CACHE: Dict[str, np.ndarray] = {}


def _cached_idx(path: str) -> np.ndarray:
    array = _IDX_CACHE.get(path)
    if array is None:
        array = _IDX_CACHE[path] = read_idx(path)
    return array


def idx_image(ref: str) -> Optional[np.ndarray]:
    """The (H, W) or (H, W, C) uint8 image an ``"<idx file>#<row>"`` reference names, or None
    when ``ref`` is a plain file path."""
    path, sep, row = ref.rpartition(IDX_REF_SEPARATOR)
    if not sep or not row.isdigit() or "idx" not in os.path.basename(path):
        return None
    return _cached_idx(path)[int(row)]


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
    images = _cached_idx(images_file)
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
