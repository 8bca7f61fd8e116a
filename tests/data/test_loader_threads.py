"""Loader workers and the main process share the cores (DATALOADER.SPLIT_CORES)."""

import os

import pytest
import torch

from fastreid.data.build import build_reid_test_loader, build_reid_train_loader
from fastreid.data.common import CommDataset


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.fixture
def threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(max(2, _cores()))
    yield
    torch.set_num_threads(before)


def _set():
    return CommDataset([(f"{i}.jpg", i % 2, 0) for i in range(4)], relabel=True)


def test_main_process_leaves_the_workers_their_cores(threads):
    want = max(1, _cores() - 1)
    build_reid_train_loader(_set(), total_batch_size=2, num_workers=1)
    assert torch.get_num_threads() == want
    torch.set_num_threads(max(2, _cores()))
    build_reid_test_loader(_set(), test_batch_size=2, num_query=2, num_workers=1)
    assert torch.get_num_threads() == want


def test_split_cores_off_no_workers_or_omp_num_threads_leave_torch_alone(threads, monkeypatch):
    start = torch.get_num_threads()
    build_reid_train_loader(_set(), total_batch_size=2, num_workers=1, split_cores=False)
    build_reid_train_loader(_set(), total_batch_size=2, num_workers=0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    build_reid_train_loader(_set(), total_batch_size=2, num_workers=1)
    assert torch.get_num_threads() == start


def test_split_cores_is_a_config_key_off_by_default():
    from fastreid.config import get_cfg

    assert get_cfg().DATALOADER.SPLIT_CORES is False
