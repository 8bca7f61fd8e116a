"""Market-1501 and the datasets that share its layout and file naming (DukeMTMC-reID)."""

from __future__ import annotations

import os
import re
from typing import List, Optional

from .bases import ImageDataset, Item, list_images, resolve_datasets_root
from .registry import DATASET_REGISTRY

# "0002_c1s1_000451_03.jpg" -> pid 2, camera 1; junk images start with "-1".
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")


def parse_market_folder(
    folder: str, *, keep_distractors: bool = True, num_cams: Optional[int] = None
) -> List[Item]:
    """Items of a folder of Market-named images (``PPPP_cCsS_FFFFFF_NN.jpg``).

    Junk images (pid -1) are dropped; distractors (pid 0) are kept unless
    ``keep_distractors`` is False. Cameras are 0-based in the result.
    """
    items: List[Item] = []
    for name in list_images(folder):
        match = _MARKET_NAME.match(name)
        if match is None:
            continue
        pid, cam = int(match.group(1)), int(match.group(2))
        if pid == -1 or (pid == 0 and not keep_distractors):
            continue
        if cam < 1 or (num_cams is not None and cam > num_cams):
            raise ValueError(
                f"Camera c{cam} in {os.path.join(folder, name)} is outside 1..{num_cams}."
            )
        items.append((os.path.join(folder, name), pid, cam - 1))
    return items


class MarketLayoutDataset(ImageDataset):
    """A dataset in Market-1501 layout under ``<root>/<folder>``.

    Subclasses only name the folder (``folders``: candidates, the first that exists wins) and
    the id prefix (``dataset_name``).
    """

    folders: tuple = ()
    num_cams: Optional[int] = None

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = self._find_data_dir()
        train_dir = os.path.join(self.data_dir, "bounding_box_train")
        query_dir = os.path.join(self.data_dir, "query")
        gallery_dir = os.path.join(self.data_dir, "bounding_box_test")
        self.check_exists([train_dir, query_dir, gallery_dir], folder=self.data_dir)

        train = parse_market_folder(train_dir, keep_distractors=False, num_cams=self.num_cams)
        query = parse_market_folder(query_dir, keep_distractors=False, num_cams=self.num_cams)
        gallery = parse_market_folder(gallery_dir, num_cams=self.num_cams)
        train, query, gallery = self.add_extras(train, query, gallery)
        super().__init__(train, query, gallery, combineall=combineall, verbose=verbose)

    def _find_data_dir(self) -> str:
        for folder in self.folders:
            path = os.path.join(self.root, folder)
            if os.path.isdir(path):
                return path
        return os.path.join(self.root, self.folders[0])

    def add_extras(self, train: List[Item], query: List[Item], gallery: List[Item]):
        """Hook for subclasses that attach a 4th element (extras dict) to items."""
        return train, query, gallery


_MARKET_LAYOUT = """\
<root>/Market-1501-v15.09.15/
    bounding_box_train/   0002_c1s1_000451_03.jpg ...  (751 ids)
    query/                0001_c1s1_001051_00.jpg ...  (3368 images)
    bounding_box_test/    0000_c1s1_... (distractors), -1_c1s1_... (junk), ...
"""


@DATASET_REGISTRY.register()
class Market1501(MarketLayoutDataset):
    """Market-1501 (Zheng et al. 2015): 1501 ids, 6 cameras.

    Junk images (pid -1) are dropped at load time; distractors (pid 0) stay in the gallery.
    """

    dataset_name = "market1501"
    folders = ("Market-1501-v15.09.15", "Market-1501", "market1501")
    num_cams = 6
    layout = _MARKET_LAYOUT


@DATASET_REGISTRY.register()
class DukeMTMC(MarketLayoutDataset):
    """DukeMTMC-reID (Zheng et al. 2017): 1404 ids + 408 distractor ids, 8 cameras."""

    dataset_name = "dukemtmc"
    folders = ("DukeMTMC-reID",)
    num_cams = 8
    layout = """\
<root>/DukeMTMC-reID/
    bounding_box_train/   0001_c2_f0046182.jpg ...  (702 ids)
    query/                0005_c2_f0046985.jpg ...
    bounding_box_test/    ...
"""
