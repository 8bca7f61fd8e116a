"""Data: registered datasets, samplers, transforms and the train/test loaders."""

from . import samplers, transforms
from .build import (
    build_reid_test_loader,
    build_reid_train_loader,
    build_train_sampler,
    fast_batch_collator,
)
from .common import CommDataset
from .data_utils import CorruptImageError, read_image, read_image_pil
from .datasets import DATASET_REGISTRY
from .synthetic import ensure_synthetic_dataset, generate_synthetic_dataset

__all__ = [
    "DATASET_REGISTRY",
    "CommDataset",
    "CorruptImageError",
    "build_reid_test_loader",
    "build_reid_train_loader",
    "build_train_sampler",
    "ensure_synthetic_dataset",
    "fast_batch_collator",
    "generate_synthetic_dataset",
    "read_image",
    "read_image_pil",
    "samplers",
    "transforms",
]
