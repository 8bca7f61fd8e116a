"""Registered re-ID datasets; ``DATASET_REGISTRY.get(name)(root=...)`` builds one."""

from .bases import Dataset, DatasetNotFoundError, ImageDataset, resolve_datasets_root
from .cuhk03 import CUHK03, CUHK03Detected, CUHK03Labeled
from .fashion_mnist import FASHION_MNIST_CLASSES, FashionMNIST, load_fashion_mnist
from .folder import ReIDFolder
from .market1501 import DukeMTMC, Market1501, MarketLayoutDataset, parse_market_folder
from .msmt17 import MSMT17
from .registry import DATASET_REGISTRY
from .synthetic import SyntheticReID
from .vehicleid import LargeVehicleID, MediumVehicleID, SmallVehicleID, VehicleID
from .veri import VeRi
from .veriwild import LargeVeRiWild, MediumVeRiWild, SmallVeRiWild, VeRiWild

__all__ = [
    "DATASET_REGISTRY",
    "FASHION_MNIST_CLASSES",
    "CUHK03",
    "CUHK03Detected",
    "CUHK03Labeled",
    "Dataset",
    "DatasetNotFoundError",
    "DukeMTMC",
    "FashionMNIST",
    "ImageDataset",
    "LargeVeRiWild",
    "LargeVehicleID",
    "MSMT17",
    "Market1501",
    "MarketLayoutDataset",
    "MediumVeRiWild",
    "MediumVehicleID",
    "ReIDFolder",
    "SmallVeRiWild",
    "SmallVehicleID",
    "SyntheticReID",
    "VeRi",
    "VeRiWild",
    "VehicleID",
    "load_fashion_mnist",
    "parse_market_folder",
    "resolve_datasets_root",
]
