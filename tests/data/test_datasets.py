"""Every registered dataset parses its real layout; errors and merging behave."""

from __future__ import annotations

import logging
import os

import pytest

from fastreid.config import get_cfg
from fastreid.data import build_reid_train_loader
from fastreid.data.datasets import DATASET_REGISTRY, DatasetNotFoundError, resolve_datasets_root

from .conftest import write_fake_datasets

REAL_DATASETS = [
    "Market1501",
    "DukeMTMC",
    "MSMT17",
    "CUHK03",
    "CUHK03Labeled",
    "CUHK03Detected",
    "VeRi",
    "VehicleID",
    "SmallVehicleID",
    "MediumVehicleID",
    "LargeVehicleID",
    "VeRiWild",
    "SmallVeRiWild",
    "MediumVeRiWild",
    "LargeVeRiWild",
    "ReIDFolder",
]


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("datasets"))
    return root, write_fake_datasets(root)


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_dataset_parses_fake_folder_with_expected_counts(fake_root, name):
    root, stats = fake_root
    dataset = DATASET_REGISTRY.get(name)(root=root, verbose=False)
    for split in ("train", "query", "gallery"):
        items = getattr(dataset, split)
        assert dataset.statistics(items) == stats[name][split], split
        assert all(os.path.isfile(item[0]) for item in items)


def test_every_registered_dataset_is_covered():
    # Projects and tests register their own datasets in the same registry; these are the core's.
    core = {
        n
        for n in DATASET_REGISTRY.names()
        if DATASET_REGISTRY.get(n).__module__.startswith("fastreid.")
    }
    # FashionMNIST reads idx files, not folders: tests/data/test_loader_factories.py covers it.
    assert core == set(REAL_DATASETS) | {"SyntheticReID", "FashionMNIST"}


def test_training_ids_are_prefixed_and_test_ids_stay_ints(fake_root):
    dataset = DATASET_REGISTRY.get("Market1501")(root=fake_root[0], verbose=False)
    assert {item[1] for item in dataset.train} == {"market1501_2", "market1501_7"}
    assert {item[2] for item in dataset.train} == {"market1501_0", "market1501_1"}
    assert {item[1] for item in dataset.query} == {1, 3}


def test_market_drops_junk_and_keeps_distractors_in_gallery(fake_root):
    dataset = DATASET_REGISTRY.get("Market1501")(root=fake_root[0], verbose=False)
    gallery_pids = [item[1] for item in dataset.gallery]
    assert 0 in gallery_pids
    assert -1 not in gallery_pids + [item[1] for item in dataset.query]


def test_combineall_adds_query_and_gallery_identities_to_train(fake_root):
    dataset = DATASET_REGISTRY.get("Market1501")(root=fake_root[0], combineall=True, verbose=False)
    # 4 train images + 2 query + 2 gallery (the distractor is not an identity).
    assert len(dataset.train) == 8
    assert dataset.num_train_pids == 4


def test_missing_dataset_error_names_path_layout_and_readme(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        DATASET_REGISTRY.get("Market1501")(root=str(tmp_path), verbose=False)
    message = str(info.value)
    assert os.path.join(str(tmp_path), "Market-1501-v15.09.15") in message
    assert "bounding_box_train" in message
    assert "datasets/README.md" in message


def test_root_falls_back_to_environment_then_default(monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", "/some/where")
    assert resolve_datasets_root("") == "/some/where"
    assert resolve_datasets_root("/explicit") == "/explicit"
    monkeypatch.delenv("FASTREID_DATASETS")
    assert resolve_datasets_root(None) == "datasets"


def test_statistics_table_is_logged(fake_root, caplog):
    with caplog.at_level(logging.INFO, logger="fastreid"):
        DATASET_REGISTRY.get("VeRi")(root=fake_root[0])
    assert "# ids" in caplog.text and "gallery" in caplog.text


def test_merged_training_sets_keep_identities_apart(fake_root):
    cfg = get_cfg()
    cfg.DATASETS.ROOT = fake_root[0]
    cfg.DATASETS.NAMES = ("Market1501", "DukeMTMC")
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 4
    loader = build_reid_train_loader(cfg)
    # Both sets use ids 2 and 7: the prefixes keep 4 classes.
    assert loader.dataset.num_classes == 4
    assert len(loader.dataset) == 8
    assert {item[1] for item in loader.dataset.img_items} == {
        "market1501_2",
        "market1501_7",
        "dukemtmc_2",
        "dukemtmc_7",
    }
