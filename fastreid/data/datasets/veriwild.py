"""VERI-Wild (Lou et al. 2019): 40671 vehicles, 174 cameras; test sets of 3k/5k/10k ids."""

from __future__ import annotations

import os
from typing import Dict, List

from .bases import ImageDataset, Item, resolve_datasets_root
from .registry import DATASET_REGISTRY


def read_vehicle_info(info_path: str) -> Dict[str, int]:
    """``<vid>/<image id>`` -> camera id, from ``vehicle_info.txt``.

    The file has a header line, then ``<vid>/<image id>;<camera>;<time>;<model>;<type>;<color>``.
    """
    cameras: Dict[str, int] = {}
    with open(info_path) as f:
        next(f, None)  # header
        for line in f:
            fields = line.strip().split(";")
            if len(fields) >= 2 and fields[1].strip().isdigit():
                cameras[fields[0]] = int(fields[1])
    return cameras


def parse_veriwild_list(list_path: str, image_dir: str, cameras: Dict[str, int]) -> List[Item]:
    """Items of a VERI-Wild list (lines ``<vid>/<image id>``, image ``<vid>/<image id>.jpg``)."""
    items: List[Item] = []
    with open(list_path) as f:
        for line in f:
            key = line.strip()
            if not key:
                continue
            if key not in cameras:
                raise ValueError(f"{list_path}: '{key}' has no camera in vehicle_info.txt")
            vid = int(key.split("/")[0])
            items.append((os.path.join(image_dir, f"{key}.jpg"), vid, cameras[key]))
    return items


@DATASET_REGISTRY.register()
class VeRiWild(ImageDataset):
    """VERI-Wild; the base class tests on the large (10000-vehicle) set."""

    dataset_name = "veriwild"
    test_size = 10000
    layout = """\
<root>/VERI-Wild/
    images/              00001/000001.jpg ...
    train_test_split/    train_list.txt, test_3000.txt + test_3000_query.txt (Small),
                         test_5000[_query].txt (Medium), test_10000[_query].txt (Large),
                         vehicle_info.txt; list lines: '<vid>/<image id>'
"""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, "VERI-Wild")
        image_dir = os.path.join(self.data_dir, "images")
        split_dir = os.path.join(self.data_dir, "train_test_split")
        paths = {
            "train": os.path.join(split_dir, "train_list.txt"),
            "query": os.path.join(split_dir, f"test_{self.test_size}_query.txt"),
            "gallery": os.path.join(split_dir, f"test_{self.test_size}.txt"),
            "info": os.path.join(split_dir, "vehicle_info.txt"),
        }
        self.check_exists([image_dir, *paths.values()], folder=self.data_dir)
        cameras = read_vehicle_info(paths["info"])
        train, query, gallery = (
            parse_veriwild_list(paths[s], image_dir, cameras) for s in ("train", "query", "gallery")
        )
        super().__init__(train, query, gallery, combineall=combineall, verbose=verbose)


@DATASET_REGISTRY.register()
class SmallVeRiWild(VeRiWild):
    """VERI-Wild small test set (3000 vehicles)."""

    test_size = 3000


@DATASET_REGISTRY.register()
class MediumVeRiWild(VeRiWild):
    """VERI-Wild medium test set (5000 vehicles)."""

    test_size = 5000


@DATASET_REGISTRY.register()
class LargeVeRiWild(VeRiWild):
    """VERI-Wild large test set (10000 vehicles)."""

    test_size = 10000
