"""The torch ``Dataset`` over item lists: decode, transform, relabel, skip corrupt files."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch.utils.data import Dataset

from .data_utils import CorruptImageError, read_image
from .idx import idx_image

logger = logging.getLogger(__name__)

# Replacement draws before giving up when SKIP_CORRUPT is on.
_MAX_REPLACEMENTS = 20


class CommDataset(Dataset):
    """Samples of ``(img_path, label, camid[, extras])`` items as dicts.

    Args:
        img_items: the items (e.g. ``dataset.train`` of several datasets concatenated).
            ``label`` is an identity or class (str or int; ``None`` when ``extras`` holds the
            targets); ``camid`` a camera or ``None`` (no camera); ``extras`` a dict of more
            fields.
        transform: callable on a uint8 (3, H, W) tensor (see ``build_transforms``); None keeps
            the decoded uint8 image.
        relabel: map labels and camids to contiguous ints 0..N-1 (training); otherwise int
            labels are kept and string labels numbered in sorted order (test sets).
        skip_corrupt: do not raise on an unreadable image (a warning is logged). In training
            (``relabel``) it is replaced by another image of the same identity. For query and
            gallery sets (``relabel=False``) it is never replaced, which would change the
            metrics: every sample then carries ``corrupt`` (bool), True with a blank image
            for an unreadable file, and the evaluator drops those samples.
        for_evaluation: whether this is a query / gallery / test set (default: ``not
            relabel``); a test set with relabelled classes (classification) passes True.

    ``dataset[i]`` is a dict: ``images`` (transformed image), ``targets`` (int; -1 without a
    label), ``camids`` (int; -1 without a camera), ``img_paths`` (str) and the item's extras
    (lists of numbers become tensors). An extras entry ``targets`` replaces the label: a
    multi-label attribute vector, for instance; :attr:`num_classes` is then its length.
    ``source`` is the registered dataset object the items came from (set by the loaders).
    """

    def __init__(
        self,
        img_items: Sequence[tuple],
        transform: Optional[Callable] = None,
        relabel: bool = True,
        skip_corrupt: bool = False,
        for_evaluation: Optional[bool] = None,
    ) -> None:
        self.img_items: List[tuple] = list(img_items)
        self.transform = transform
        self.relabel = relabel
        self.skip_corrupt = skip_corrupt
        self.for_evaluation = (not relabel) if for_evaluation is None else bool(for_evaluation)
        self.pids = sorted({item[1] for item in self.img_items if item[1] is not None}, key=str)
        self.cams = sorted({item[2] for item in self.img_items if item[2] is not None}, key=str)
        self.source: Any = None
        self.dataset_name = ""
        self.pid_dict: Dict[Any, int] = {p: i for i, p in enumerate(self.pids)}
        self.cam_dict: Dict[Any, int] = {c: i for i, c in enumerate(self.cams)}
        self._by_pid: Optional[Dict[Any, List[int]]] = None

    def __len__(self) -> int:
        return len(self.img_items)

    @property
    def num_classes(self) -> int:
        """Training identities/classes, or the length of the items' ``targets`` vectors."""
        if self.img_items and len(self.img_items[0]) > 3:
            targets = self.img_items[0][3].get("targets")
            if targets is not None and not isinstance(targets, (int, float)):
                return len(targets)
        return len(self.pids)

    @property
    def num_cameras(self) -> int:
        return len(self.cams)

    def _same_identity(self, index: int) -> List[int]:
        if self._by_pid is None:
            by_pid: Dict[Any, List[int]] = defaultdict(list)
            for i, item in enumerate(self.img_items):
                by_pid[item[1]].append(i)
            self._by_pid = by_pid
        return self._by_pid[self.img_items[index][1]]

    @property
    def marks_corrupt(self) -> bool:
        """Whether samples carry a ``corrupt`` flag (evaluation sets with skip_corrupt)."""
        return self.skip_corrupt and self.for_evaluation

    def _load(self, index: int) -> tuple:
        """(image, index actually used); draws replacements for unreadable files if allowed.

        The image is None for an unreadable evaluation image (see ``marks_corrupt``)."""
        try:
            return read_image(self.img_items[index][0]), index
        except CorruptImageError as error:
            if not self.skip_corrupt:
                raise
            if self.marks_corrupt:
                logger.warning("Dropping unreadable image from the evaluation: %s", error)
                return None, index
            logger.warning("Skipping unreadable image: %s", error)
            first_error = error
        rng = random.Random(index)
        candidates = [i for i in self._same_identity(index) if i != index] or list(range(len(self)))
        for _ in range(_MAX_REPLACEMENTS):
            other = rng.choice(candidates)
            try:
                return read_image(self.img_items[other][0]), other
            except CorruptImageError as error:
                logger.warning("Skipping unreadable image: %s", error)
        raise CorruptImageError(
            f"{_MAX_REPLACEMENTS} replacement images for {self.img_items[index][0]} were unreadable "
            "too; the dataset looks broken."
        ) from first_error

    def _blank_like_neighbour(self, index: int) -> torch.Tensor:
        """A black image of a readable neighbour's size (batches need equal sizes)."""
        for other in range(index + 1, index + 1 + _MAX_REPLACEMENTS):
            try:
                return torch.zeros_like(read_image(self.img_items[other % len(self)][0]))
            except CorruptImageError:
                continue
        return torch.zeros(3, 8, 8, dtype=torch.uint8)

    def _index(self, value: Any, mapping: Dict[Any, int]) -> int:
        if value is None:
            return -1
        if self.relabel or isinstance(value, str):
            return mapping[value]
        return int(value)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        image, used = self._load(index)
        corrupt = image is None
        if corrupt:
            image = self._blank_like_neighbour(index)  # a stand-in the evaluator drops
        path, pid, camid, *rest = self.img_items[used]
        if self.transform is not None:
            image = self.transform(image)
        sample = {
            "images": image,
            "targets": self._index(pid, self.pid_dict),
            "camids": self._index(camid, self.cam_dict),
            "img_paths": path,
        }
        if self.marks_corrupt:
            sample["corrupt"] = corrupt
        if rest:
            for key, value in rest[0].items():
                if isinstance(value, (list, tuple)) and all(
                    isinstance(v, (int, float)) for v in value
                ):
                    value = torch.tensor(value)
                sample[key] = value
        return sample


def read_item_image(path: str) -> Optional[torch.Tensor]:
    """The uint8 (3, H, W) image of an ``"<idx file>#<row>"`` item, or None for a file path."""
    array = idx_image(path)
    if array is None:
        return None
    image = torch.from_numpy(array.copy())
    if image.ndim == 2:  # grey: three equal channels, as read_image gives RGB
        return image.unsqueeze(0).expand(3, -1, -1).contiguous()
    return image.permute(2, 0, 1).contiguous()


class ItemDataset(CommDataset):
    """:class:`CommDataset` that also reads images stored in idx files (Fashion-MNIST items
    ``"<idx file>#<row>"``); other items are read from their files."""

    def _load(self, index: int) -> tuple:
        image = read_item_image(self.img_items[index][0])
        if image is not None:
            return image, index
        return super()._load(index)
