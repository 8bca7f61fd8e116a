"""Suite-wide settings: small thread counts and fixed seeds so tests are repeatable."""

import random

import numpy as np
import pytest
import torch

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
