"""The classification torch dataset: the core's ``ItemDataset`` with a fixed class order."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

from fastreid.data.common import ItemDataset

__all__ = ["ClasDataset", "ClsDataset"]


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


# FastReID's name for the dataset.
ClasDataset = ClsDataset
