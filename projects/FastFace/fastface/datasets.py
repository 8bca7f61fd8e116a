"""Face datasets: the insightface ``.rec`` training set, image folders, and the verification
pair sets registered by name.

Layouts (under the datasets root, ``DATASETS.ROOT`` / ``$FASTREID_DATASETS`` / ``datasets``):

* ``DATASETS.REC_PATH``: ``train.rec`` + ``train.idx`` (see :mod:`.recordio`).
* ``FaceFolder`` (``faces/<identity>/*.jpg``) and ``MS1MV2`` (``MS_Celeb_1M/<identity>/*.jpg``):
  one folder per identity, every image used.
* Verification sets: ``faces_emore/<name>.bin`` as insightface ships them
  (``lfw.bin``, ``cfp_fp.bin``, ``cfp_ff.bin``, ``agedb_30.bin``, ``calfw.bin``,
  ``cplfw.bin``, ``vgg2_fp.bin``); ``SyntheticFaceVal`` reads ``SyntheticFace/val.bin``.
  Without the ``.bin``, FastReID's bcolz folders are read: ``faces_emore_val/<name>/`` and
  ``faces_emore_val/<name>_list.npy`` (:mod:`.bcolz`).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from fastreid.data.data_utils import SKIP_CORRUPT_KEY, CorruptImageError
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.bases import (
    DatasetNotFoundError,
    ImageDataset,
    list_images,
    resolve_datasets_root,
)

from .bcolz import read_bcolz_pairs
from .pairs import read_pairs
from .recordio import FaceRecIndex, RecordIOError

__all__ = [
    "decode_face",
    "RecFaceDataset",
    "FaceFolder",
    "MS1MV2",
    "PairSet",
    "PairImageDataset",
    "VERIFICATION_SETS",
]

logger = logging.getLogger(__name__)
_MAX_REPLACEMENTS = 20  # replacement draws before giving up (SKIP_CORRUPT)


def decode_face(data: bytes, where: str) -> torch.Tensor:
    """Encoded image bytes -> uint8 RGB ``(3, H, W)``."""
    try:
        return decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB
        )
    except (RuntimeError, ValueError) as e:
        raise CorruptImageError(f"Cannot decode the image of {where}: {e}") from None


class RecFaceDataset(Dataset):
    """Training samples from an insightface ``train.rec`` (with ``train.idx`` beside it).

    ``dataset[i]`` is a dict as the core's ``CommDataset`` gives: ``images`` (transformed),
    ``targets`` (class id), ``camids`` (0), ``img_paths`` (``"<rec>#<record>"``).
    ``num_classes`` is the identity count of the ``.rec`` header.
    """

    def __init__(
        self, rec_path: str, transform: Optional[Callable] = None, skip_corrupt: bool = False
    ) -> None:
        self.rec_path = rec_path
        self.index = FaceRecIndex(rec_path)
        self.transform = transform
        self.skip_corrupt = skip_corrupt
        self.skipped = 0  # records skipped by this process (each loader worker counts its own)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def num_classes(self) -> int:
        return self.index.num_classes

    @property
    def num_cameras(self) -> int:
        return 1

    def _decode(self, i: int) -> Tuple[torch.Tensor, int, int]:
        key = self.index.image_keys[i]
        where = f"{self.rec_path} record {key}"
        try:
            _, payload, label = self.index.sample(i)
        except RecordIOError as e:
            raise CorruptImageError(str(e)) from None
        if not 0 <= label < self.num_classes:
            raise CorruptImageError(
                f"{where} has class {label}, outside 0..{self.num_classes - 1} announced by the "
                "header; the .rec is inconsistent."
            )
        return decode_face(payload, where), label, key

    def __getitem__(self, i: int) -> Dict[str, Any]:
        try:
            image, label, key = self._decode(i)
        except CorruptImageError as error:
            if not self.skip_corrupt:
                raise CorruptImageError(
                    f"{error} Set {SKIP_CORRUPT_KEY} True to skip unreadable records with a "
                    "warning."
                ) from None
            image, label, key = self._replacement(i, error)
        if self.transform is not None:
            image = self.transform(image)
        return {
            "images": image,
            "targets": label,
            "camids": 0,
            "img_paths": f"{self.rec_path}#{key}",
        }

    def _replacement(self, i: int, error: CorruptImageError) -> Tuple[torch.Tensor, int, int]:
        """Another readable record in place of the unreadable ``i`` (SKIP_CORRUPT)."""
        rng = random.Random(i)
        self.skipped += 1
        logger.warning(
            "Skipping unreadable record (%d skipped in this process): %s", self.skipped, error
        )
        for _ in range(_MAX_REPLACEMENTS if len(self) > 1 else 0):
            other = rng.randrange(len(self) - 1)
            try:
                return self._decode(other + (other >= i))  # any record but i
            except CorruptImageError as e:
                self.skipped += 1
                logger.warning(
                    "Skipping unreadable record (%d skipped in this process): %s", self.skipped, e
                )
        raise CorruptImageError(
            f"{_MAX_REPLACEMENTS} replacement records for {self.rec_path} record "
            f"{self.index.image_keys[i]} were unreadable too; the .rec looks broken."
        )


@DATASET_REGISTRY.register()
class FaceFolder(ImageDataset):
    """Training faces as ``<root>/faces/<identity>/<image>`` (every image is used).

    Subclass with another ``folder`` for other sets; there are no query/gallery splits
    (faces are evaluated on pair sets).
    """

    dataset_name = "faces"
    folder = "faces"
    layout = """\
<root>/faces/<identity>/<image>     e.g. faces/0000123/001.jpg (one folder per identity)
"""

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = os.path.join(self.root, self.folder)
        self.check_exists([self.data_dir], folder=self.data_dir)
        train = []
        for identity in sorted(os.listdir(self.data_dir)):
            sub = os.path.join(self.data_dir, identity)
            if os.path.isdir(sub):
                train += [
                    (os.path.join(sub, n), f"{self.dataset_name}_{identity}", "0")
                    for n in list_images(sub)
                ]
        if not train:
            raise DatasetNotFoundError(
                f"No images under {self.data_dir}; expected layout:\n{self.layout}"
            )
        super().__init__(train, [], [], combineall=False, verbose=verbose)


@DATASET_REGISTRY.register()
class MS1MV2(FaceFolder):
    """MS1MV2 (MS-Celeb-1M cleaned by insightface) unpacked to image folders."""

    dataset_name = "ms1mv2"
    folder = "MS_Celeb_1M"
    layout = """\
<root>/MS_Celeb_1M/<identity>/<image>   e.g. MS_Celeb_1M/0/1.jpg
"""


class PairSet:
    """A verification set: ``images`` (2P encoded files, pair k = images 2k, 2k+1) and
    ``issame`` ``(P,)`` bools, read from ``<root>/<folder>/<file>``.

    Registered in ``DATASET_REGISTRY`` under the FastReID names; built with ``root`` like the
    re-ID datasets, but they hold pairs, not ``train``/``query``/``gallery`` lists (FastFace's
    trainer builds their loaders).
    """

    folder = "faces_emore"
    file = ""
    train: List = []
    query: List = []
    gallery: List = []

    bcolz_folder = "faces_emore_val"  # FastReID's layout: <name>/ (bcolz) + <name>_list.npy
    decoded = False  # images are encoded files (.bin) or decoded uint8 arrays (bcolz)

    def __init__(self, root: str = "", verbose: bool = True, **_: Any) -> None:
        self.root = resolve_datasets_root(root)
        self.path = os.path.join(self.root, self.folder, self.file)
        stem = os.path.splitext(self.file)[0]
        bcolz_dir = os.path.join(self.root, self.bcolz_folder)
        if os.path.isfile(self.path):
            self.images, self.issame = read_pairs(self.path)
        elif os.path.isdir(os.path.join(bcolz_dir, stem)):
            self.path = os.path.join(bcolz_dir, stem)
            self.images, self.issame = read_bcolz_pairs(bcolz_dir, stem)
            self.decoded = True
        else:
            raise DatasetNotFoundError(
                f"Verification set '{type(self).__name__}' not found: missing {self.path}. "
                f"Put insightface's {self.file} in {os.path.join(self.root, self.folder)} (see "
                f"datasets/README.md), or FastReID's bcolz folder {stem}/ and {stem}_list.npy "
                f"in {bcolz_dir}, or set DATASETS.ROOT."
            )

    def __len__(self) -> int:
        return len(self.issame)


VERIFICATION_SETS: Dict[str, type] = {}


def _register_pair_set(name: str, folder: str, file: str) -> type:
    cls = type(name, (PairSet,), {"folder": folder, "file": file, "__doc__": f"{file} pairs."})
    DATASET_REGISTRY.register(cls, name=name)
    VERIFICATION_SETS[name] = cls
    return cls


for _name, _file in (
    ("LFW", "lfw.bin"),
    ("CFP_FF", "cfp_ff.bin"),
    ("CFP_FP", "cfp_fp.bin"),
    ("AgeDB_30", "agedb_30.bin"),
    ("CALFW", "calfw.bin"),
    ("CPLFW", "cplfw.bin"),
    ("VGG2_FP", "vgg2_fp.bin"),
):
    _register_pair_set(_name, "faces_emore", _file)
_register_pair_set("SyntheticFaceVal", "SyntheticFace", "val.bin")


class PairImageDataset(Dataset):
    """The images of a :class:`PairSet` in order, as test-loader sample dicts."""

    def __init__(self, pairs: PairSet, transform: Optional[Callable] = None) -> None:
        self.images = pairs.images
        self.issame = np.asarray(pairs.issame, dtype=bool)
        self.where = getattr(pairs, "path", "pair set")
        self.decoded = bool(getattr(pairs, "decoded", False))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        if self.decoded:  # bcolz sets: uint8 (3, H, W) arrays
            image = torch.from_numpy(np.ascontiguousarray(self.images[i]))
        else:
            image = decode_face(self.images[i], f"{self.where} image {i}")
        if self.transform is not None:
            image = self.transform(image)
        return {
            "images": image,
            "targets": i // 2,
            "camids": i % 2,
            "img_paths": f"{self.where}#{i}",
        }
