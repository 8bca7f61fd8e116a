"""Base classes every dataset builds on: item lists, statistics table, root resolution."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

from tabulate import tabulate

logger = logging.getLogger(__name__)

# One sample: (img_path, pid, camid) or (img_path, pid, camid, extras).
# Training pids/camids are strings prefixed with the dataset name; query/gallery keep ints.
Item = Tuple[Any, ...]

DATASETS_ENV = "FASTREID_DATASETS"
DATASETS_README = "datasets/README.md"


@runtime_checkable
class ProvidesTestItems(Protocol):
    """A registered dataset the test loader reads through ``test_items() -> (items,
    num_query)`` (every :class:`Dataset` is one); other registered classes give ``query`` and
    ``gallery`` lists."""

    def test_items(self) -> Tuple[List[Item], int]: ...


def resolve_datasets_root(root: Optional[str] = None) -> str:
    """Datasets folder: ``root`` if given, else ``$FASTREID_DATASETS``, else ``./datasets``."""
    if root:
        return os.path.expanduser(root)
    return os.path.expanduser(os.environ.get(DATASETS_ENV, "datasets"))


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder (or one of its files) is missing; the message says what is expected."""


class Dataset:
    """A dataset with ``train``, ``query`` and ``gallery`` item lists.

    Subclasses set ``dataset_name`` (prefix of training ids, e.g. ``"market1501"``) and build the
    three lists, then call ``super().__init__(train, query, gallery, ...)``.

    Args:
        train: training items; their pid/camid are prefixed with ``dataset_name`` here.
        query: query items (int pid/camid).
        gallery: gallery items (int pid/camid).
        combineall: also train on query and gallery (distractors and junk excluded).
        verbose: log the statistics table.
        test: the test items of a dataset whose test split is not query/gallery
            (classification, attributes, verification pairs); the test loader then reads
            these and ``num_query == len(test)`` (see :meth:`test_items`).

    Items are ``(img_path, label, camid)`` or ``(img_path, label, camid, extras)``: ``label``
    may be ``None`` when ``extras["targets"]`` holds the target (a multi-label vector) and
    ``camid`` ``None`` when there is no camera (see ``CommDataset``).
    """

    dataset_name: str = "dataset"
    # Folder layout shown when the dataset is missing (see datasets/README.md).
    layout: str = ""

    def __init__(
        self,
        train: List[Item],
        query: List[Item],
        gallery: List[Item],
        combineall: bool = False,
        verbose: bool = True,
        *,
        test: Optional[List[Item]] = None,
    ) -> None:
        self.train = [self._prefix(item) for item in train]
        self.query = list(query)
        self.gallery = list(gallery)
        self.test: List[Item] = list(test or [])
        if combineall:
            self.combine_all()
        if verbose:
            self.show_summary()

    # ------------------------------------------------------------------ helpers
    def _prefix(self, item: Item) -> Item:
        path, pid, camid, *rest = item
        if pid is not None and not isinstance(pid, str):
            pid = f"{self.dataset_name}_{pid}"
        if camid is not None and not isinstance(camid, str):
            camid = f"{self.dataset_name}_{camid}"
        return (path, pid, camid, *rest)

    def test_items(self) -> Tuple[List[Item], int]:
        """What the test loader reads and how many of those items are queries: query then
        gallery; or ``test`` (all queries) when the dataset has no query/gallery. A gallery
        left empty means self-retrieval (every query searched against the others)."""
        if self.test and not self.query and not self.gallery:
            return list(self.test), len(self.test)
        return self.query + self.gallery, len(self.query)

    def combine_all(self) -> None:
        """Add query and gallery identities (ids > 0) to the training list, prefixed."""
        for item in self.query + self.gallery:
            if int(item[1]) <= 0:  # distractors (0) and junk (-1) are not identities
                continue
            path, pid, camid, *rest = item
            # A separate prefix keeps test ids apart from training ids with the same number.
            self.train.append(
                (path, f"{self.dataset_name}_test_{pid}", f"{self.dataset_name}_{camid}", *rest)
            )

    @classmethod
    def check_exists(cls, paths: Sequence[str], folder: Optional[str] = None) -> None:
        """Raise one :class:`DatasetNotFoundError` listing every missing path and the layout.

        When the dataset ``folder`` itself is missing, only it is named.
        """
        if folder is not None and not os.path.isdir(folder):
            missing = [folder]
        else:
            missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise DatasetNotFoundError(
                f"Dataset '{cls.__name__}' not found: missing {', '.join(missing)}.\n"
                f"Expected layout:\n{cls.layout.rstrip()}\n"
                f"Set DATASETS.ROOT or ${DATASETS_ENV} to the folder that holds it, and see "
                f"{DATASETS_README} for where each dataset goes."
            )

    @staticmethod
    def statistics(items: List[Item]) -> Tuple[int, int, int]:
        """(number of ids, images, cameras) of an item list (``None`` labels/cameras not counted)."""
        pids = {item[1] for item in items if item[1] is not None}
        cams = {item[2] for item in items if item[2] is not None}
        return len(pids), len(items), len(cams)

    @property
    def num_train_pids(self) -> int:
        return self.statistics(self.train)[0]

    @property
    def num_train_cams(self) -> int:
        return self.statistics(self.train)[2]

    def summary_table(self) -> str:
        rows = [
            [split, *self.statistics(items)]
            for split, items in (
                ("train", self.train),
                ("query", self.query),
                ("gallery", self.gallery),
            )
        ]
        if self.test:
            rows.append(["test", *self.statistics(self.test)])
        return tabulate(
            rows,
            headers=["subset", "# ids", "# images", "# cameras"],
            tablefmt="pipe",
            numalign="left",
        )

    def show_summary(self) -> None:
        logger.info("=> Loaded %s:\n%s", type(self).__name__, self.summary_table())

    def __repr__(self) -> str:
        n_train, n_query, n_gallery = len(self.train), len(self.query), len(self.gallery)
        return (
            f"{type(self).__name__}(train={n_train}, query={n_query}, gallery={n_gallery} images)"
        )


class ImageDataset(Dataset):
    """A re-ID dataset of image files (the only kind fastreid ships)."""


def list_images(
    folder: str, extensions: Union[str, Tuple[str, ...]] = (".jpg", ".jpeg", ".png")
) -> List[str]:
    """Sorted image file names (not paths) directly inside ``folder``."""
    if isinstance(extensions, str):
        extensions = (extensions,)
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(extensions))


def extras_of(item: Item) -> Dict[str, Any]:
    """The extras dict of an item (empty when it has only path, pid, camid)."""
    return item[3] if len(item) > 3 else {}
