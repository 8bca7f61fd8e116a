"""The torch datasets of the projects: core ``CommDataset`` plus images held in idx files, and
a fixed class order for classification."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from fastreid.config import CfgNode
from fastreid.data import build_reid_test_loader
from fastreid.data.common import CommDataset
from fastreid.data.datasets import DATASET_REGISTRY, resolve_datasets_root
from fastreid.data.transforms import build_transforms
from fastreid.utils import comm

from .datasets import idx_image

__all__ = [
    "ClasDataset",
    "ClsDataset",
    "ItemDataset",
    "build_item_test_loader",
    "read_item_image",
]


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
    """:class:`CommDataset` that also reads images stored in idx files (Fashion-MNIST)."""

    def _load(self, index: int) -> Tuple[torch.Tensor, int]:
        image = read_item_image(self.img_items[index][0])
        if image is not None:
            return image, index
        return super()._load(index)


class ClsDataset(ItemDataset):
    """Items ``(img_path, class_name, camid)`` whose ``targets`` are indices into
    ``class_names`` (the same order in training and testing, saved as idx2class.json; the
    core's test sets would number a test split's labels on their own, which shifts them
    when a class has no test image).

    Args:
        img_items: the items.
        transform: callable on a uint8 (3, H, W) tensor.
        class_names: index -> class name; defaults to the sorted class names of the items.
        skip_corrupt, for_evaluation: see :class:`CommDataset` (a test set passes
            ``for_evaluation=True``: unreadable images are then marked, not replaced).
    """

    def __init__(
        self,
        img_items: Sequence[tuple],
        transform: Optional[Callable] = None,
        class_names: Optional[Sequence[str]] = None,
        skip_corrupt: bool = False,
        for_evaluation: bool = False,
    ) -> None:
        super().__init__(
            img_items,
            transform,
            relabel=True,
            skip_corrupt=skip_corrupt,
            for_evaluation=for_evaluation,
        )
        present = {str(item[1]) for item in self.img_items}
        names: List[str] = [str(c) for c in class_names] if class_names else sorted(present)
        unknown = sorted(present - set(names))
        if unknown:
            raise KeyError(
                f"Classes {', '.join(unknown[:10])} are not among the model's "
                f"{len(names)} classes ({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}); "
                "test on a set with the training classes."
            )
        self.pids = names
        self.pid_dict: Dict[str, int] = {name: i for i, name in enumerate(names)}

    @property
    def class_names(self) -> List[str]:
        return list(self.pids)


def build_item_test_loader(
    cfg: CfgNode,
    dataset_name: str,
    make_test_set: Callable[[List[tuple], Callable], CommDataset],
    all_queries: bool = False,
) -> Tuple[Any, int]:
    """``(loader, num_query)`` over the registered ``dataset_name``'s ``test_items()``.

    ``make_test_set(items, transform)`` builds the torch dataset (the test transform of
    ``cfg``); ``all_queries`` makes every image a query (classification), otherwise the
    dataset's own query count is kept (retrieval).
    """
    dataset = DATASET_REGISTRY.get(dataset_name)(
        root=resolve_datasets_root(cfg.DATASETS.ROOT), verbose=comm.is_main_process()
    )
    items, num_query = dataset.test_items()
    test_set = make_test_set(items, build_transforms(cfg, is_train=False, to_float=False))
    test_set.source, test_set.dataset_name = dataset, dataset_name
    return build_reid_test_loader(
        test_set=test_set,
        test_batch_size=cfg.TEST.IMS_PER_BATCH,
        num_query=len(test_set) if all_queries else num_query,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


# FastReID's name for the dataset.
ClasDataset = ClsDataset
