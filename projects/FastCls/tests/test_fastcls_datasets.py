"""Image-folder and Fashion-MNIST readers, through the core registry."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.synthetic.fashion_mnist import write_fashion_mnist_like as make_fashion_mnist
from projects.FastCls.fastcls import (
    FASHION_MNIST_CLASSES,
    ClsDataset,
    EmptyClassFolderError,
    read_idx,
)
from projects.FastCls.fastcls.datasets import DatasetNotFoundError

from .fastcls_fixtures import make_image_folder


def test_hymenoptera_layout(tmp_path):
    make_image_folder(
        str(tmp_path / "hymenoptera_data"),
        {"train": {"ants": 3, "bees": 2}, "val": {"ants": 1, "bees": 2}},
    )
    data = DATASET_REGISTRY.get("Hymenoptera")(root=str(tmp_path), verbose=False)
    assert data.classes == ["ants", "bees"]
    assert [item[1] for item in data.train] == ["ants"] * 3 + ["bees"] * 2
    items, num_query = data.test_items()  # the core's test-split seam
    assert data.query == [] and data.gallery == [] and len(items) == num_query == 3
    dataset = ClsDataset(items, None, data.classes)
    assert [dataset[i]["targets"] for i in range(3)] == [0, 1, 1]
    assert dataset[0]["camids"] == -1  # no camera
    assert dataset[0]["images"].shape == (3, 20, 24) and dataset[0]["images"].dtype == torch.uint8


def test_empty_class_folder_is_one_clear_error(tmp_path):
    root = make_image_folder(
        str(tmp_path / "hymenoptera_data"), {"train": {"ants": 2}, "val": {"ants": 1}}
    )
    os.makedirs(os.path.join(root, "train", "bees"))
    with pytest.raises(EmptyClassFolderError, match=r"train/bees holds no image"):
        DATASET_REGISTRY.get("Hymenoptera")(root=str(tmp_path), verbose=False)


def test_test_class_unknown_to_training_is_an_error(tmp_path):
    make_image_folder(
        str(tmp_path / "hymenoptera_data"), {"train": {"ants": 2}, "val": {"ants": 1, "wasps": 1}}
    )
    with pytest.raises(DatasetNotFoundError, match="wasps"):
        DATASET_REGISTRY.get("Hymenoptera")(root=str(tmp_path), verbose=False)


def test_fashion_mnist_from_idx_files(tmp_path, monkeypatch):
    folder = make_fashion_mnist(str(tmp_path / "fashion-mnist"), per_class=2, test_per_class=1)
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))  # no root given: the env var
    data = DATASET_REGISTRY.get("FashionMNIST")(verbose=False)
    assert len(data.train) == 20 and len(data.test) == 10
    labels = read_idx(os.path.join(folder, "t10k-labels-idx1-ubyte"))
    images = read_idx(os.path.join(folder, "t10k-images-idx3-ubyte"))
    dataset = ClsDataset(data.test, None, data.classes)
    sample = dataset[4]
    assert data.test[4][1] == FASHION_MNIST_CLASSES[labels[4]]
    assert sample["targets"] == int(labels[4])  # Fashion-MNIST's own label order
    assert sample["images"].shape == (3, 28, 28)
    for channel in range(3):
        assert torch.equal(sample["images"][channel], torch.from_numpy(images[4]))


def test_fashion_mnist_root_may_be_the_folder_itself(tmp_path):
    make_fashion_mnist(str(tmp_path), per_class=1, test_per_class=1)
    data = DATASET_REGISTRY.get("FashionMNIST")(root=str(tmp_path), verbose=False)
    assert len(data.train) == 10


def test_missing_idx_files_say_how_to_get_them(tmp_path):
    folder = make_fashion_mnist(str(tmp_path / "fashion-mnist"), per_class=1, test_per_class=1)
    os.remove(os.path.join(folder, "t10k-labels-idx1-ubyte"))
    with pytest.raises(DatasetNotFoundError) as info:
        DATASET_REGISTRY.get("FashionMNIST")(root=str(tmp_path), verbose=False)
    message = str(info.value)
    assert (
        "t10k-labels-idx1-ubyte" in message
        and "train-images" not in message.split("missing")[1].split(".")[0]
    )
    assert "apt-get install dataset-fashion-mnist" in message and "DATASETS.ROOT" in message


def test_unknown_class_at_test_time_is_an_error():
    items = [("a.jpg", "cat", 0), ("b.jpg", "dog", 0)]
    with pytest.raises(KeyError, match="dog"):
        ClsDataset(items, None, ["cat"])


def test_class_order_is_kept_beyond_ten_classes():
    names = [f"c{i}" for i in range(12)]  # sorted as strings would put c10 before c2
    items = [(f"{n}.jpg", n, 0) for n in names]
    dataset = ClsDataset(items, None, names)
    assert [dataset.pid_dict[n] for n in names] == list(range(12))
    assert np.all(np.array(dataset.class_names) == np.array(names))
