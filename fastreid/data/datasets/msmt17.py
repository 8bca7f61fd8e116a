"""MSMT17 (Wei et al. 2018): 4101 ids, 15 cameras, images listed in text files."""

from __future__ import annotations

import os
from typing import List

from .bases import ImageDataset, Item, resolve_datasets_root
from .registry import DATASET_REGISTRY

# Version folder -> (train image folder, test image folder).
_VERSIONS = {
    "MSMT17_V2": ("mask_train_v2", "mask_test_v2"),
    "MSMT17_V1": ("train", "test"),
}


def parse_msmt_list(list_path: str, image_dir: str) -> List[Item]:
    """Items of an MSMT17 list file.

    Each line is ``<pid folder>/<image name> <pid>``, e.g.
    ``0000/0000_000_01_0303morning_0015_0.jpg 0``; the camera (1-15) is the third ``_`` field.
    """
    items: List[Item] = []
    with open(list_path) as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rel_path, pid = line.split()
                camid = int(os.path.basename(rel_path).split("_")[2]) - 1
                items.append((os.path.join(image_dir, rel_path), int(pid), camid))
            except (ValueError, IndexError) as e:
                raise ValueError(
                    f"{list_path}:{line_no}: expected '<pid>/<pid>_<n>_<cam>_....jpg <pid>', "
                    f"got {line!r}"
                ) from e
    return items


@DATASET_REGISTRY.register()
class MSMT17(ImageDataset):
    """MSMT17, V2 (masked faces) or V1; the validation list is added to training."""

    dataset_name = "msmt17"
    layout = """\
<root>/MSMT17_V2/            (or MSMT17_V1/ with train/ and test/)
    mask_train_v2/          0000/0000_000_01_0303morning_0015_0.jpg ...
    mask_test_v2/           0000/...
    list_train.txt  list_val.txt  list_query.txt  list_gallery.txt
                            lines: '<pid>/<image>.jpg <pid>'
"""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        candidates = [os.path.join(self.root, v) for v in _VERSIONS]
        candidates += [os.path.join(self.root, "msmt17", v) for v in _VERSIONS]
        self.data_dir = next((c for c in candidates if os.path.isdir(c)), candidates[0])
        train_name, test_name = _VERSIONS[os.path.basename(self.data_dir)]
        train_dir = os.path.join(self.data_dir, train_name)
        test_dir = os.path.join(self.data_dir, test_name)
        lists = {
            name: os.path.join(self.data_dir, f"list_{name}.txt")
            for name in ("train", "val", "query", "gallery")
        }
        self.check_exists([train_dir, test_dir, *lists.values()], folder=self.data_dir)

        train = parse_msmt_list(lists["train"], train_dir)
        train += parse_msmt_list(lists["val"], train_dir)
        query = parse_msmt_list(lists["query"], test_dir)
        gallery = parse_msmt_list(lists["gallery"], test_dir)
        super().__init__(train, query, gallery, combineall=combineall, verbose=verbose)
