"""Suite-wide settings: small thread counts and fixed seeds so tests are repeatable."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from fastreid.data.synthetic import generate_synthetic_dataset
from fastreid.modeling import build_model

from . import bad_input as _bad_input

# No test reaches the network: ImageNet weights come only from files a test writes or serves.
os.environ.setdefault("FASTREID_OFFLINE", "1")

# Two pytest workers share two cores; more threads per worker only adds contention.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def datasets_root(tmp_path, monkeypatch):
    """An empty datasets folder exported as FASTREID_DATASETS for the test."""
    root = tmp_path / "datasets"
    root.mkdir()
    monkeypatch.setenv("FASTREID_DATASETS", str(root))
    return root


@pytest.fixture(scope="module")
def tiny_reid_root(tmp_path_factory) -> Path:
    """A tiny synthetic re-ID set (8 ids, 32x16 images) for the bad-input tests."""
    root = tmp_path_factory.mktemp("datasets")
    generate_synthetic_dataset(str(root), num_ids=8, height=32, width=16)
    return root


@pytest.fixture(scope="module")
def r18_model():
    """A ResNet-18 re-ID model with 4 classes."""
    return build_model(_bad_input.small_cfg("MODEL.HEADS.NUM_CLASSES", "4"))
