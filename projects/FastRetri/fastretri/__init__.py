"""FastRetri: fine-grained image retrieval (CUB, Cars196, SOP, In-Shop, zero-shot Fashion-MNIST).

Importing this package registers its datasets and ``RetriEvaluator`` (the Fashion-MNIST reader
and ``build_small_resnet_backbone`` it uses are the core's).
"""

from .config import add_retri_config
from .datasets import (
    CUB,
    SOP,
    Cars196,
    FashionMNISTZeroShot,
    InShop,
    ListFileError,
    RetrievalListDataset,
    read_list_file,
)
from .evaluator import RetriEvaluator
from .metrics import nearest_neighbors, retrieval_metrics
from .trainer import RetriTrainer

__all__ = [
    "CUB",
    "SOP",
    "Cars196",
    "FashionMNISTZeroShot",
    "InShop",
    "ListFileError",
    "RetriEvaluator",
    "RetriTrainer",
    "RetrievalListDataset",
    "add_retri_config",
    "nearest_neighbors",
    "read_list_file",
    "retrieval_metrics",
]
