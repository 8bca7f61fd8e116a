"""Classification datasets in the core registry: image folders (Hymenoptera). Fashion-MNIST
is the core's (``fastreid.data.datasets.FashionMNIST``).

Items are ``(img_path, class_name, None)`` (no camera): ``train`` holds the training split and
``test`` the test split (the core's ``Dataset(test=...)``; query and gallery stay empty). Each
dataset lists its class names in ``classes`` (the label order: index i is ``classes[i]``).
"""

from __future__ import annotations

import os
from typing import List, Sequence

from fastreid.data.datasets import DATASET_REGISTRY, ImageDataset, resolve_datasets_root
from fastreid.data.datasets.bases import DatasetNotFoundError, Item

__all__ = ["ClsImageFolder", "EmptyClassFolderError", "Hymenoptera"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


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
