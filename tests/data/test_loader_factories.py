"""The loaders' dataset seams: a dataset class or a factory replaces CommDataset, so a project
never re-implements "registered dataset -> loader". Checked on a Fashion-MNIST look-alike
whose images live in idx files (read back and compared with the arrays written)."""

from __future__ import annotations

import os

import numpy as np
import torch

from fastreid.config import get_cfg
from fastreid.data import ItemDataset, build_reid_test_loader, build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.datasets import FASHION_MNIST_CLASSES
from fastreid.data.idx import read_idx
from fastreid.data.synthetic.fashion_mnist import write_fashion_mnist_like


def _cfg(root: str):
    cfg = get_cfg()
    cfg.DATASETS.ROOT = root
    cfg.DATASETS.NAMES = ("FashionMNIST",)
    cfg.DATASETS.TESTS = ("FashionMNIST",)
    cfg.INPUT.SIZE_TRAIN = [0]
    cfg.INPUT.SIZE_TEST = [0]
    for key in ("FLIP", "PADDING", "REA", "CJ", "AFFINE", "AUGMIX", "AUTOAUG"):
        if key in cfg.INPUT:
            cfg.INPUT[key].ENABLED = False
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.TEST.IMS_PER_BATCH = 5
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
    return cfg


def test_dataset_class_reads_idx_images_in_train_and_test_loaders(tmp_path):
    folder = write_fashion_mnist_like(
        str(tmp_path / "fashion-mnist"), per_class=2, test_per_class=1
    )
    cfg = _cfg(str(tmp_path))
    train = build_reid_train_loader(cfg, dataset_class=ItemDataset)
    assert type(train.dataset) is ItemDataset and len(train.dataset) == 20
    assert train.dataset.num_classes == 10
    batch = next(iter(train))
    images = read_idx(os.path.join(folder, "train-images-idx3-ubyte.gz"))
    for image, path in zip(batch["images"], batch["img_paths"]):
        row = int(path.rpartition("#")[2])
        expected = torch.from_numpy(images[row]).expand(3, -1, -1)
        assert torch.equal(image.to(torch.uint8), expected)

    loader, num_query = build_reid_test_loader(cfg, "FashionMNIST", dataset_class=ItemDataset)
    assert type(loader.dataset) is ItemDataset
    assert num_query == 10  # a test split only: every image is a query (self-retrieval)
    seen = torch.cat([b["images"] for b in loader])
    test_images = read_idx(os.path.join(folder, "t10k-images-idx3-ubyte"))
    assert torch.equal(seen[:, 0].to(torch.uint8), torch.from_numpy(test_images))


def test_factories_see_the_registered_datasets_and_all_queries(tmp_path):
    write_fashion_mnist_like(str(tmp_path / "fashion-mnist"), per_class=1, test_per_class=1)
    cfg = _cfg(str(tmp_path))
    seen = {}

    def make_train(items, transform, datasets):
        seen["train"] = [type(d).__name__ for d in datasets]
        return CommDataset(items[:6], transform, relabel=True)

    def make_test(items, transform, dataset):
        seen["test"] = list(dataset.classes)
        return ItemDataset(items[:7], transform, relabel=False)

    train = build_reid_train_loader(cfg, train_set_factory=make_train)
    assert seen["train"] == ["FashionMNIST"] and len(train.dataset) == 6
    loader, num_query = build_reid_test_loader(
        cfg, "FashionMNIST", test_set_factory=make_test, all_queries=True
    )
    assert seen["test"] == list(FASHION_MNIST_CLASSES)
    assert num_query == 7 == len(loader.dataset)
    assert loader.dataset.dataset_name == "FashionMNIST"
    labels = np.concatenate([b["targets"].numpy() for b in loader])
    assert len(labels) == 7
