"""Retrieval datasets in the core registry: CUB-200-2011, Cars196, Stanford Online Products and
In-Shop from list files, and the zero-shot Fashion-MNIST split.

List files (the dml_cross_entropy preparation FastReID uses) have one ``path,label`` line per
image, the path relative to the dataset folder. CUB, Cars196 and SOP have ``train.txt`` and
``test.txt``: the test split is searched against itself (``query`` = the test images,
``gallery`` empty). In-Shop has ``train.txt``, ``test_query.txt`` and ``test_gallery.txt``.
Training labels are prefixed with the dataset name; test labels become ints (the numbers in
the file, or the sorted label strings numbered from 0).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

from fastreid.data.datasets import DATASET_REGISTRY, ImageDataset, resolve_datasets_root
from fastreid.data.datasets.bases import DatasetNotFoundError
from fastreid.data.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = [
    "CUB",
    "Cars196",
    "FashionMNISTZeroShot",
    "InShop",
    "ListFileError",
    "RetrievalListDataset",
    "SOP",
    "read_list_file",
]


class ListFileError(DatasetNotFoundError):
    """A list file has a malformed line or names a missing image."""


def read_list_file(path: str, image_root: str) -> List[Tuple[str, str]]:
    """``(image path, label string)`` of each ``path,label`` line of ``path``.

    Image paths are relative to ``image_root``; blank lines are skipped. A malformed line or
    a missing image raises :class:`ListFileError` naming the file and the line number.
    """
    entries: List[Tuple[str, str]] = []
    missing: List[Tuple[int, str]] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            image, sep, label = line.rpartition(",")
            image, label = image.strip(), label.strip()
            if not sep or not image or not label:
                raise ListFileError(
                    f"{path}, line {number}: expected 'relative/image/path,label', got {line!r}."
                )
            full = os.path.join(image_root, image)
            if not os.path.isfile(full):
                missing.append((number, full))
            entries.append((full, label))
    if missing:
        number, full = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ListFileError(
            f"{path}, line {number}: image {full} does not exist{more}. Image paths are "
            f"relative to {image_root}; check the dataset folder or the list file."
        )
    if not entries:
        raise ListFileError(f"{path} lists no image; expected 'relative/image/path,label' lines.")
    return entries


def _layout(folder: str, test_lists: str) -> str:
    return (
        f"<root>/{folder}/\n"
        "    train.txt        lines 'relative/image/path,label' (path relative to the folder)\n"
        f"    {test_lists}\n"
        "    <the images, where the lists say>\n"
    )


def _int_labels(*splits: Sequence[Tuple[str, str]]) -> Dict[str, int]:
    labels = sorted({label for split in splits for _, label in split})
    if all(label.lstrip("-").isdigit() for label in labels):
        return {label: int(label) for label in labels}
    return {label: i for i, label in enumerate(labels)}


class RetrievalListDataset(ImageDataset):
    """A retrieval set of list files in ``<root>/<folder>/``; subclasses set the names."""

    dataset_name = "retrieval"
    folder = ""
    train_list = "train.txt"
    query_list = "test.txt"
    gallery_list: Optional[str] = None  # None: the query split is searched against itself
    layout = _layout("<folder>", "test.txt")

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, self.folder)
        lists = [self.train_list, self.query_list] + (
            [self.gallery_list] if self.gallery_list else []
        )
        self.check_exists([os.path.join(self.data_dir, name) for name in lists], self.data_dir)
        train_entries = read_list_file(os.path.join(self.data_dir, self.train_list), self.data_dir)
        query_entries = read_list_file(os.path.join(self.data_dir, self.query_list), self.data_dir)
        gallery_entries = (
            read_list_file(os.path.join(self.data_dir, self.gallery_list), self.data_dir)
            if self.gallery_list
            else []
        )
        train = [(p, f"{self.dataset_name}_{label}", None) for p, label in train_entries]
        test_ids = _int_labels(query_entries, gallery_entries)
        query = [(p, test_ids[label], None) for p, label in query_entries]
        gallery = [(p, test_ids[label], None) for p, label in gallery_entries]
        super().__init__(train, query, gallery, combineall=combineall, verbose=verbose)

    def combine_all(self) -> None:
        for path, label, _ in self.query + self.gallery:
            self.train.append((path, f"{self.dataset_name}_test_{label}", None))


@DATASET_REGISTRY.register()
class CUB(RetrievalListDataset):
    """CUB-200-2011 (Wah et al. 2011): classes 1-100 train, 101-200 test (self-retrieval)."""

    dataset_name = "cub"
    folder = "CUB_200_2011"
    layout = _layout(folder, "test.txt         same format; searched against itself")


@DATASET_REGISTRY.register()
class Cars196(RetrievalListDataset):
    """Stanford Cars (Krause et al. 2013): classes 1-98 train, 99-196 test (self-retrieval)."""

    dataset_name = "cars"
    folder = "Cars_196"
    layout = _layout(folder, "test.txt         same format; searched against itself")


@DATASET_REGISTRY.register()
class SOP(RetrievalListDataset):
    """Stanford Online Products (Song et al. 2016): 11 318 train, 11 316 test products
    (60 502 test images, self-retrieval)."""

    dataset_name = "sop"
    folder = "Stanford_Online_Products"
    layout = _layout(folder, "test.txt         same format; searched against itself")


@DATASET_REGISTRY.register()
class InShop(RetrievalListDataset):
    """In-Shop Clothes Retrieval (Liu et al. 2016): 14 218 query vs 12 612 gallery images."""

    dataset_name = "inshop"
    folder = "InShop"
    query_list = "test_query.txt"
    gallery_list = "test_gallery.txt"
    layout = _layout(folder, "test_query.txt   same format\n    test_gallery.txt same format")


@DATASET_REGISTRY.register()
class FashionMNISTZeroShot(ImageDataset):
    """The zero-shot protocol on Fashion-MNIST: train on the training images of classes
    ``train_classes`` (0-4), retrieve among the test images of ``test_classes`` (5-9) by
    self-retrieval. Reads the idx files as FastCls's ``FashionMNIST`` does."""

    dataset_name = "fmnistzs"
    train_classes: Sequence[int] = (0, 1, 2, 3, 4)
    test_classes: Sequence[int] = (5, 6, 7, 8, 9)

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        index = {name: i for i, name in enumerate(FASHION_MNIST_CLASSES)}
        train = [
            (path, index[name], None)
            for path, name, _ in load_fashion_mnist(root, "train")
            if index[name] in self.train_classes
        ]
        query = [
            (path, index[name], None)
            for path, name, _ in load_fashion_mnist(root, "test")
            if index[name] in self.test_classes
        ]
        super().__init__(train, query, [], combineall=False, verbose=verbose)
