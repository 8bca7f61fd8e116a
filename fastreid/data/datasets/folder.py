"""A generic re-ID dataset from folders of identities, for custom data."""

from __future__ import annotations

import os
import re
from typing import Dict, List

from .bases import ImageDataset, Item, list_images, resolve_datasets_root
from .registry import DATASET_REGISTRY

# A camera token in the file name: "c3_0001.jpg", "0001_c3.jpg", "img_c12_7.png".
_CAMERA_TOKEN = re.compile(r"(?:^|_)c(\d+)(?:_|\.|$)")


def _pid_map(names: List[str]) -> Dict[str, int]:
    # Numeric folder names keep their number; other names are numbered 1, 2, ... in sorted order.
    if all(n.isdigit() for n in names):
        return {n: int(n) for n in names}
    return {n: i + 1 for i, n in enumerate(sorted(names))}


@DATASET_REGISTRY.register()
class ReIDFolder(ImageDataset):
    """Custom data laid out as ``<root>/<folder>/{train,query,gallery}/<identity>/<image>``.

    The camera is read from a ``c<N>`` token in the file name (``c2_0001.jpg``); without one,
    every query image gets camera 0 and every gallery image camera 1 (so the evaluation's
    same-camera filter keeps all true matches) and training images camera 0.
    Use another folder by subclassing: ``class MyData(ReIDFolder): folder = "my_data"``
    (registered with ``@DATASET_REGISTRY.register()``).
    """

    dataset_name = "reidfolder"
    folder = "custom"
    layout = """\
<root>/custom/                 (ReIDFolder; a subclass sets its own folder name)
    train/<identity>/<image>   e.g. train/0001/c1_0001.jpg  ('c<N>' in the name = camera N)
    query/<identity>/<image>
    gallery/<identity>/<image>
"""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, self.folder)
        split_dirs = {s: os.path.join(self.data_dir, s) for s in ("train", "query", "gallery")}
        self.check_exists(list(split_dirs.values()), folder=self.data_dir)
        test_ids = sorted(
            set(_subfolders(split_dirs["query"])) | set(_subfolders(split_dirs["gallery"]))
        )
        test_map = _pid_map(test_ids)
        train_map = _pid_map(_subfolders(split_dirs["train"]))
        train = self._parse(split_dirs["train"], train_map, default_cam=0)
        query = self._parse(split_dirs["query"], test_map, default_cam=0)
        gallery = self._parse(split_dirs["gallery"], test_map, default_cam=1)
        super().__init__(train, query, gallery, combineall=combineall, verbose=verbose)

    @staticmethod
    def _parse(split_dir: str, pid_map: Dict[str, int], default_cam: int) -> List[Item]:
        items: List[Item] = []
        for identity in _subfolders(split_dir):
            folder = os.path.join(split_dir, identity)
            for name in list_images(folder):
                match = _CAMERA_TOKEN.search(os.path.splitext(name)[0] + ".")
                camid = int(match.group(1)) if match else default_cam
                items.append((os.path.join(folder, name), pid_map[identity], camid))
        return items


def _subfolders(path: str) -> List[str]:
    return sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)))
