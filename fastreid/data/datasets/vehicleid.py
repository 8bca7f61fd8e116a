"""PKU VehicleID (Liu et al. 2016): 26267 vehicles; test lists of 800/1600/2400 ids."""

from __future__ import annotations

import os
import random
from typing import List, Tuple

from .bases import ImageDataset, Item, resolve_datasets_root
from .registry import DATASET_REGISTRY


def parse_vehicleid_list(list_path: str, image_dir: str) -> List[Item]:
    """Items of a VehicleID list (lines ``<image id> <vehicle id>``, image ``<id>.jpg``).

    VehicleID has no camera labels; each image gets its own number as camera so the
    evaluation's same-camera filter never removes a true match.
    """
    items: List[Item] = []
    with open(list_path) as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{list_path}:{line_no}: expected '<image id> <vehicle id>'")
            image_id, vid = fields
            items.append((os.path.join(image_dir, f"{image_id}.jpg"), int(vid), int(image_id)))
    return items


def split_query_gallery(items: List[Item], seed: int = 0) -> Tuple[List[Item], List[Item]]:
    """The VehicleID protocol: one random image per vehicle in the gallery, the rest are queries."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    seen = set()
    query: List[Item] = []
    gallery: List[Item] = []
    for item in shuffled:
        if item[1] in seen:
            query.append(item)
        else:
            seen.add(item[1])
            gallery.append(item)
    return query, gallery


@DATASET_REGISTRY.register()
class VehicleID(ImageDataset):
    """VehicleID; the base class tests on the full list (``test_list_13164.txt``)."""

    dataset_name = "vehicleid"
    test_list = "test_list_13164.txt"
    layout = """\
<root>/vehicleid/
    image/               0000001.jpg ...
    train_test_split/    train_list.txt, test_list_800.txt, test_list_1600.txt,
                         test_list_2400.txt (Small/Medium/Large), test_list_13164.txt
                         lines: '<image id> <vehicle id>'
"""

    def __init__(
        self, root: str = "", combineall: bool = False, verbose: bool = True, seed: int = 0
    ) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, "vehicleid")
        image_dir = os.path.join(self.data_dir, "image")
        split_dir = os.path.join(self.data_dir, "train_test_split")
        train_list = os.path.join(split_dir, "train_list.txt")
        test_list = os.path.join(split_dir, self.test_list)
        self.check_exists([image_dir, train_list, test_list], folder=self.data_dir)
        train = parse_vehicleid_list(train_list, image_dir)
        query, gallery = split_query_gallery(parse_vehicleid_list(test_list, image_dir), seed)
        super().__init__(train, query, gallery, combineall=combineall, verbose=verbose)


@DATASET_REGISTRY.register()
class SmallVehicleID(VehicleID):
    """VehicleID with the 800-vehicle test list."""

    test_list = "test_list_800.txt"


@DATASET_REGISTRY.register()
class MediumVehicleID(VehicleID):
    """VehicleID with the 1600-vehicle test list."""

    test_list = "test_list_1600.txt"


@DATASET_REGISTRY.register()
class LargeVehicleID(VehicleID):
    """VehicleID with the 2400-vehicle test list."""

    test_list = "test_list_2400.txt"
