"""FastCls: image classification with ClasHead + cross-entropy on the fastreid core.

Importing this package registers its datasets (``ClsImageFolder``, ``Hymenoptera``,
``FashionMNIST``), the ``ClsEvaluator`` and the ``build_small_resnet_backbone`` backbone.
FastReID's names ``ClasTrainer`` and ``ClasDataset`` (its ``FastClas`` project) are aliases.
"""

from .data import ClasDataset, ClsDataset, ItemDataset, read_item_image
from .datasets import (
    FASHION_MNIST_CLASSES,
    ClsImageFolder,
    EmptyClassFolderError,
    FashionMNIST,
    Hymenoptera,
    load_fashion_mnist,
)
from .evaluator import ClsEvaluator, classification_metrics, save_confusion_matrix
from .idx import IdxFileError, read_idx, write_idx
from .small_resnet import SmallResNet, build_small_resnet_backbone
from .trainer import IDX2CLASS_FILE, ClasTrainer, ClsTrainer, load_idx2class, save_idx2class

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IDX2CLASS_FILE",
    "ClasDataset",
    "ClasTrainer",
    "ClsDataset",
    "ClsEvaluator",
    "ClsImageFolder",
    "ClsTrainer",
    "EmptyClassFolderError",
    "FashionMNIST",
    "Hymenoptera",
    "IdxFileError",
    "ItemDataset",
    "SmallResNet",
    "build_small_resnet_backbone",
    "classification_metrics",
    "load_fashion_mnist",
    "load_idx2class",
    "read_idx",
    "read_item_image",
    "save_confusion_matrix",
    "save_idx2class",
    "write_idx",
]
