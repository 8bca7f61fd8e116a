"""CUHK03 (Li et al. 2014) under the new protocol (Zhong et al. 2017): 767 train / 700 test ids."""

from __future__ import annotations

import json
import os
from typing import Dict, List, Tuple

import numpy as np

from .bases import ImageDataset, Item, resolve_datasets_root
from .registry import DATASET_REGISTRY


def _camid_from_name(name: str) -> int:
    # "1_001_1_01.png": camera pair, person, view (1 or 2), image -> view is the camera.
    return int(name.split("_")[2]) - 1


def read_new_protocol_mat(split_path: str, image_dir: str) -> Dict[str, List[Item]]:
    """Train/query/gallery items from ``cuhk03_new_protocol_config_<labeled|detected>.mat``.

    The file holds ``filelist`` (image names), ``labels`` (person ids) and 1-based
    ``train_idx`` / ``query_idx`` / ``gallery_idx``.
    """
    from scipy.io import loadmat

    split = loadmat(split_path)
    names = [str(np.asarray(entry).ravel()[0]) for entry in split["filelist"].ravel()]
    pids = split["labels"].ravel().astype(int)
    result: Dict[str, List[Item]] = {}
    for subset in ("train", "query", "gallery"):
        idxs = split[f"{subset}_idx"].ravel().astype(int) - 1
        result[subset] = [
            (os.path.join(image_dir, names[i]), int(pids[i]), _camid_from_name(names[i]))
            for i in idxs
        ]
    return result


def read_json_split(split_path: str, image_dir: str) -> Dict[str, List[Item]]:
    """Items from an extracted split file (``splits_new_<labeled|detected>.json``).

    The file is a list whose first entry has ``train``, ``query`` and ``gallery`` lists of
    ``[image path, pid, camid]``; paths are re-rooted to ``image_dir`` by file name.
    """
    with open(split_path) as f:
        split = json.load(f)[0]
    return {
        subset: [
            (os.path.join(image_dir, os.path.basename(path)), int(pid), int(camid))
            for path, pid, camid in split[subset]
        ]
        for subset in ("train", "query", "gallery")
    }


@DATASET_REGISTRY.register()
class CUHK03(ImageDataset):
    """CUHK03 new protocol; ``labeled=False`` (default) uses the detected boxes."""

    dataset_name = "cuhk03"
    layout = """\
<root>/cuhk03/
    images_labeled/                            1_001_1_01.png ... (extracted from cuhk-03.mat)
    images_detected/                           1_001_1_01.png ...
    cuhk03_new_protocol_config_labeled.mat     (or splits_new_labeled.json)
    cuhk03_new_protocol_config_detected.mat    (or splits_new_detected.json)
"""

    def __init__(
        self,
        root: str = "",
        labeled: bool = False,
        combineall: bool = False,
        verbose: bool = True,
    ) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, "cuhk03")
        kind = "labeled" if labeled else "detected"
        image_dir = os.path.join(self.data_dir, f"images_{kind}")
        split_path, reader = self._split_file(kind)
        self.check_exists([image_dir, split_path], folder=self.data_dir)
        split = reader(split_path, image_dir)
        super().__init__(
            split["train"], split["query"], split["gallery"], combineall=combineall, verbose=verbose
        )

    def _split_file(self, kind: str) -> Tuple[str, object]:
        mat = os.path.join(self.data_dir, f"cuhk03_new_protocol_config_{kind}.mat")
        js = os.path.join(self.data_dir, f"splits_new_{kind}.json")
        if not os.path.exists(mat) and os.path.exists(js):
            return js, read_json_split
        return mat, read_new_protocol_mat


@DATASET_REGISTRY.register()
class CUHK03Labeled(CUHK03):
    """CUHK03 new protocol with the hand-labeled boxes."""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        super().__init__(root, labeled=True, combineall=combineall, verbose=verbose)


@DATASET_REGISTRY.register()
class CUHK03Detected(CUHK03):
    """CUHK03 new protocol with the detector's boxes (same as ``CUHK03``)."""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        super().__init__(root, labeled=False, combineall=combineall, verbose=verbose)
