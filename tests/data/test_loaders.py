"""Loaders: dict batches, query-then-gallery order, corrupt and missing images."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.data import (
    CommDataset,
    CorruptImageError,
    build_reid_test_loader,
    build_reid_train_loader,
)
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.samplers import NaiveIdentitySampler
from fastreid.utils import comm

from .conftest import write_image


def synthetic_cfg(root, workers=0, batch=8):
    cfg = get_cfg()
    cfg.DATASETS.ROOT = root
    cfg.DATASETS.NAMES = ("SyntheticReID",)
    cfg.DATASETS.TESTS = ("SyntheticReID",)
    cfg.INPUT.SIZE_TRAIN = cfg.INPUT.SIZE_TEST = [32, 16]
    cfg.INPUT.FLIP.ENABLED = cfg.INPUT.PADDING.ENABLED = cfg.INPUT.REA.ENABLED = True
    cfg.DATALOADER.SAMPLER_TRAIN = "NaiveIdentitySampler"
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.SOLVER.IMS_PER_BATCH = batch
    cfg.TEST.IMS_PER_BATCH = 16
    return cfg


@pytest.mark.parametrize("workers", [0, 1])
def test_train_loader_yields_dict_batches(tiny_synthetic, workers):
    loader = build_reid_train_loader(synthetic_cfg(tiny_synthetic, workers))
    batch = next(iter(loader))
    # uint8 all the way to the model, which converts on its device (4x less to copy).
    assert batch["images"].shape == (8, 3, 32, 16) and batch["images"].dtype == torch.uint8
    assert batch["targets"].dtype == torch.int64 and batch["targets"].shape == (8,)
    assert batch["camids"].dtype == torch.int64
    assert len(batch["img_paths"]) == 8 and batch["attributes"].shape[0] == 8
    assert int(batch["targets"].max()) < loader.dataset.num_classes == 6


def test_train_batch_is_p_by_k(tiny_synthetic):
    batch = next(iter(build_reid_train_loader(synthetic_cfg(tiny_synthetic))))
    assert sorted(torch.bincount(batch["targets"]).tolist())[-2:] == [4, 4]


def test_per_process_batch_divides_global_batch(tiny_synthetic, monkeypatch):
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(comm, "shared_random_seed", lambda: 0)
    batch = next(iter(build_reid_train_loader(synthetic_cfg(tiny_synthetic, batch=16))))
    assert batch["images"].shape[0] == 8


def test_explicit_arguments_door(tiny_synthetic):
    items = DATASET_REGISTRY.get("SyntheticReID")(root=tiny_synthetic, verbose=False).train
    train_set = CommDataset(items, transform=None)
    sampler = NaiveIdentitySampler(items, 4, 2, seed=0)
    loader = build_reid_train_loader(train_set, sampler=sampler, total_batch_size=4)
    assert next(iter(loader))["images"].shape[0] == 4


def test_test_loader_gives_query_then_gallery_once(tiny_synthetic):
    loader, num_query = build_reid_test_loader(synthetic_cfg(tiny_synthetic), "SyntheticReID")
    dataset = DATASET_REGISTRY.get("SyntheticReID")(root=tiny_synthetic, verbose=False)
    paths = [p for batch in loader for p in batch["img_paths"]]
    assert num_query == len(dataset.query)
    assert paths == [item[0] for item in dataset.query + dataset.gallery]


def test_test_batches_keep_integer_ids(tiny_synthetic):
    loader, _ = build_reid_test_loader(synthetic_cfg(tiny_synthetic), "SyntheticReID")
    batch = next(iter(loader))
    assert batch["images"].shape[1:] == (3, 32, 16) and batch["targets"].dtype == torch.int64


def _items_with_one_bad_file(tmp_path, content):
    items = []
    for i in range(4):
        path = str(tmp_path / f"{i}.jpg")
        write_image(path, i)
        items.append((path, 1, 0))
    bad = str(tmp_path / "bad.jpg")
    if content is not None:
        with open(bad, "wb") as f:
            f.write(content)
    return items + [(bad, 1, 0)], bad


def test_corrupt_image_error_names_the_file(tmp_path):
    items, bad = _items_with_one_bad_file(tmp_path, b"not a jpeg")
    with pytest.raises(CorruptImageError, match="bad.jpg.*DATALOADER.SKIP_CORRUPT"):
        CommDataset(items, relabel=False)[4]


def test_missing_image_error_names_the_file(tmp_path):
    items, bad = _items_with_one_bad_file(tmp_path, None)
    with pytest.raises(CorruptImageError, match=bad):
        CommDataset(items, relabel=False)[4]


def test_skip_corrupt_draws_a_training_replacement_with_a_warning(tmp_path, caplog):
    items, bad = _items_with_one_bad_file(tmp_path, b"")
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        sample = CommDataset(items, relabel=True, skip_corrupt=True)[4]
    assert sample["img_paths"] != bad and os.path.exists(sample["img_paths"])
    assert sample["targets"] == 0  # the same (only) identity
    assert "bad.jpg" in caplog.text


def test_skip_corrupt_marks_an_unreadable_evaluation_image_instead_of_replacing_it(tmp_path):
    # Replacing a query/gallery image by another one would change the metrics.
    items, bad = _items_with_one_bad_file(tmp_path, b"")
    dataset = CommDataset(items, relabel=False, skip_corrupt=True)
    sample, good = dataset[4], dataset[0]
    assert sample["img_paths"] == bad and sample["corrupt"] is True
    assert good["corrupt"] is False
    assert sample["images"].shape == good["images"].shape and sample["images"].sum() == 0


def test_skip_corrupt_key_reaches_the_train_loader(tiny_synthetic):
    cfg = synthetic_cfg(tiny_synthetic)
    cfg.DATALOADER.SKIP_CORRUPT = True
    assert build_reid_train_loader(cfg).dataset.skip_corrupt


@pytest.mark.parametrize("mode", ["L", "RGBA", "RGB"])
def test_read_image_gives_rgb_uint8_for_png_modes(tmp_path, mode):
    from PIL import Image

    from fastreid.data import read_image

    path = str(tmp_path / "x.png")
    Image.new(mode, (8, 16)).save(path)
    out = read_image(path)
    assert out.shape == (3, 16, 8) and out.dtype == torch.uint8
