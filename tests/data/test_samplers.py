"""Samplers: P x K batches, camera balance, set weights, rank slicing, clear errors."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from fastreid.config import get_cfg
from fastreid.data.build import build_train_sampler
from fastreid.data.samplers import (
    BalancedIdentitySampler,
    InferenceSampler,
    NaiveIdentitySampler,
    SetReWeightSampler,
    TrainingSampler,
)
from fastreid.utils import comm


def make_items(num_ids=8, per_id=5, cams=3, prefix="set"):
    return [
        (f"{prefix}/{pid}_{i}.jpg", f"{prefix}_{pid}", f"{prefix}_{i % cams}")
        for pid in range(num_ids)
        for i in range(per_id)
    ]


def batches(sampler, size, count):
    stream = iter(sampler)
    return [list(itertools.islice(stream, size)) for _ in range(count)]


def fake_world(monkeypatch, rank, world_size):
    monkeypatch.setattr(comm, "get_rank", lambda: rank)
    monkeypatch.setattr(comm, "get_world_size", lambda: world_size)


@pytest.mark.parametrize("cls", [NaiveIdentitySampler, BalancedIdentitySampler])
def test_identity_sampler_yields_p_ids_with_k_images_each(cls):
    items = make_items(per_id=3)  # fewer images than K for every id: sampled with replacement
    for batch in batches(cls(items, 16, 4, seed=0), 16, 5):
        counts = Counter(items[i][1] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {4}


def test_naive_sampler_groups_each_identity_contiguously():
    items = make_items()
    batch = batches(NaiveIdentitySampler(items, 8, 4, seed=1), 8, 1)[0]
    assert len({items[i][1] for i in batch[:4]}) == 1 and len({items[i][1] for i in batch[4:]}) == 1


def test_balanced_sampler_spreads_identity_over_cameras():
    items = make_items(num_ids=4, per_id=8, cams=4)
    for batch in batches(BalancedIdentitySampler(items, 8, 4, seed=0), 8, 4):
        for group in (batch[:4], batch[4:]):
            assert len({items[i][2] for i in group}) == 4


def test_set_reweight_sampler_follows_weights():
    items = make_items(prefix="market") + make_items(prefix="duke")
    sampler = SetReWeightSampler(items, 16, 4, set_weight=[1, 3], seed=0)
    for batch in batches(sampler, 16, 3):
        pids = {items[i][1] for i in batch}
        assert sum(p.startswith("market") for p in pids) == 1
        assert sum(p.startswith("duke") for p in pids) == 3


@pytest.mark.parametrize("cls", [NaiveIdentitySampler, BalancedIdentitySampler])
def test_ranks_get_disjoint_slices_of_the_global_batch(monkeypatch, cls):
    items = make_items()
    fake_world(monkeypatch, 0, 1)
    global_batches = batches(cls(items, 16, 4, seed=5), 16, 3)
    per_rank = []
    for rank in (0, 1):
        fake_world(monkeypatch, rank, 2)
        per_rank.append(batches(cls(items, 8, 4, seed=5), 8, 3))
    for step, full in enumerate(global_batches):
        assert per_rank[0][step] + per_rank[1][step] == full


def test_training_sampler_ranks_are_disjoint(monkeypatch):
    seen = []
    for rank in (0, 1):
        fake_world(monkeypatch, rank, 2)
        seen.append(list(itertools.islice(iter(TrainingSampler(10, seed=3)), 5)))
    assert sorted(seen[0] + seen[1]) == list(range(10))


def test_training_sampler_is_infinite():
    assert len(list(itertools.islice(iter(TrainingSampler(3, seed=0)), 10))) == 10


def test_inference_sampler_covers_each_index_once_in_order(monkeypatch):
    shards = []
    for rank in range(3):
        fake_world(monkeypatch, rank, 3)
        shards.append(list(InferenceSampler(10)))
    assert shards[0] + shards[1] + shards[2] == list(range(10))


def test_num_instance_larger_than_batch_raises():
    with pytest.raises(ValueError, match="DATALOADER.NUM_INSTANCE"):
        NaiveIdentitySampler(make_items(), 2, 4, seed=0)


def test_batch_not_multiple_of_k_raises():
    with pytest.raises(ValueError, match="not a multiple of DATALOADER.NUM_INSTANCE"):
        BalancedIdentitySampler(make_items(), 10, 4, seed=0)


def test_fewer_ids_than_p_raises():
    with pytest.raises(ValueError, match="has only 8"):
        NaiveIdentitySampler(make_items(num_ids=8), 64, 4, seed=0)


def test_empty_dataset_raises():
    with pytest.raises(ValueError, match="empty"):
        NaiveIdentitySampler([], 8, 4, seed=0)


def test_wrong_set_weight_count_raises():
    with pytest.raises(ValueError, match="DATALOADER.SET_WEIGHT"):
        SetReWeightSampler(make_items(), 8, 4, set_weight=[1, 1], seed=0)


def test_per_process_batch_from_config_is_checked(monkeypatch):
    fake_world(monkeypatch, 0, 4)
    cfg = get_cfg()
    cfg.DATALOADER.SAMPLER_TRAIN = "NaiveIdentitySampler"
    cfg.SOLVER.IMS_PER_BATCH = 8  # 2 images per process < NUM_INSTANCE 4
    with pytest.raises(ValueError, match="SOLVER.IMS_PER_BATCH"):
        build_train_sampler(cfg, make_items())


def test_unknown_sampler_name_lists_choices():
    cfg = get_cfg()
    cfg.DATALOADER.SAMPLER_TRAIN = "RandomIdentitySampler"
    with pytest.raises(ValueError, match="NaiveIdentitySampler"):
        build_train_sampler(cfg, make_items())
