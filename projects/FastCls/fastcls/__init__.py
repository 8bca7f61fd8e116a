"""FastCls: image classification with ClasHead + cross-entropy on the fastreid core.

Importing this package registers its datasets (``ClsImageFolder``, ``Hymenoptera``) and the
``ClsEvaluator``. Fashion-MNIST, idx files, ``ItemDataset`` and the small ResNet are the
core's (``fastreid.data``, ``fastreid.modeling.backbones``); their names are re-exported here.
FastReID's names ``ClasTrainer`` and ``ClasDataset`` (its ``FastClas`` project) are aliases.
"""

from fastreid.data.common import ItemDataset, read_item_image
from fastreid.data.datasets.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FashionMNIST,
    load_fashion_mnist,
)
from fastreid.data.idx import IdxFileError, read_idx, write_idx
from fastreid.modeling.backbones.small_resnet import SmallResNet, build_small_resnet_backbone

from .data import ClasDataset, ClsDataset
from .datasets import ClsImageFolder, EmptyClassFolderError, Hymenoptera
from .evaluator import ClsEvaluator, classification_metrics, save_confusion_matrix
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
