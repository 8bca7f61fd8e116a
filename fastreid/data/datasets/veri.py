"""VeRi-776 (Liu et al. 2016): 776 vehicles, 20 cameras."""

from __future__ import annotations

import os
import re
from typing import List

from .bases import ImageDataset, Item, list_images, resolve_datasets_root
from .registry import DATASET_REGISTRY

# "0001_c001_00016450_0.jpg" -> vehicle 1, camera 1.
_VERI_NAME = re.compile(r"^(-?\d+)_c(\d+)")


def parse_veri_folder(folder: str) -> List[Item]:
    """Items of a VeRi image folder; cameras 0-based, pid -1 dropped."""
    items: List[Item] = []
    for name in list_images(folder):
        match = _VERI_NAME.match(name)
        if match is None:
            continue
        pid, cam = int(match.group(1)), int(match.group(2))
        if pid == -1:
            continue
        items.append((os.path.join(folder, name), pid, cam - 1))
    return items


@DATASET_REGISTRY.register()
class VeRi(ImageDataset):
    """VeRi-776 with its ``image_train`` / ``image_query`` / ``image_test`` folders."""

    dataset_name = "veri"
    layout = """\
<root>/veri/
    image_train/   0001_c001_00016450_0.jpg ...
    image_query/   0002_c002_00030600_0.jpg ...
    image_test/    ...
"""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, "veri")
        folders = [os.path.join(self.data_dir, f"image_{s}") for s in ("train", "query", "test")]
        self.check_exists(folders, folder=self.data_dir)
        train, query, gallery = (parse_veri_folder(f) for f in folders)
        super().__init__(train, query, gallery, combineall=combineall, verbose=verbose)
