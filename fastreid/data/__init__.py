"""Data: registered datasets, samplers, transforms and the train/test loaders."""

from . import samplers, transforms
from .build import (
    build_reid_test_loader,
    build_reid_train_loader,
    build_train_sampler,
    fast_batch_collator,
)
from .common import CommDataset, ItemDataset, read_item_image
from .data_utils import CorruptImageError, read_image, read_image_pil
from .datasets import DATASET_REGISTRY

__all__ = [
    "DATASET_REGISTRY",
    "CommDataset",
    "CorruptImageError",
    "ItemDataset",
    "build_reid_test_loader",
    "build_reid_train_loader",
    "build_train_sampler",
    "ensure_synthetic_dataset",
    "fast_batch_collator",
    "generate_synthetic_dataset",
    "read_image",
    "read_image_pil",
    "read_item_image",
    "samplers",
    "transforms",
]


def __getattr__(name: str):
    # The generators are imported on first use (they are not needed to train on real data).
    if name in ("ensure_synthetic_dataset", "generate_synthetic_dataset"):
        from . import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
