"""A run killed mid-way and resumed ends where an uninterrupted run ends."""

from __future__ import annotations

import torch

from fastreid.engine import DefaultTrainer
from fastreid.utils.env import seed_all_rng

from .conftest import tiny_config, train_until_killed


def _trainer(cfg, seed=None) -> DefaultTrainer:
    seed_all_rng(cfg.SEED if seed is None else seed)  # what default_setup does at start-up
    return DefaultTrainer(cfg)


def test_resume_after_a_kill_reaches_the_same_weights_and_metrics(synthetic_root, tmp_path):
    # One data worker: the per-epoch worker seeding is part of what must replay exactly.
    overrides = {"DATALOADER.NUM_WORKERS": 1}
    full = _trainer(tiny_config(synthetic_root, str(tmp_path / "full"), **overrides))
    full.resume_or_load(resume=False)
    full_results = full.train()

    cfg = tiny_config(synthetic_root, str(tmp_path / "killed"), **overrides)
    killed = _trainer(cfg)
    killed.resume_or_load(resume=False)

    train_until_killed(killed)
    assert (tmp_path / "killed" / "last_checkpoint").read_text() == "model_0000.pth"

    # Started from another seed (what SEED -1 gives a second process): the sampler draws
    # another index stream, and the checkpoint's sampler seed must put the original back.
    resumed = _trainer(cfg, seed=cfg.SEED + 12345)
    assert resumed._trainer.data_stream.sampler_seed != killed._trainer.data_stream.sampler_seed
    resumed.resume_or_load(resume=True)
    assert resumed._trainer.data_stream.sampler_seed == killed._trainer.data_stream.sampler_seed
    assert resumed.start_epoch == 1
    resumed_results = resumed.train()

    final = resumed.model.state_dict()
    for key, value in full.model.state_dict().items():
        assert torch.equal(final[key], value), key
    assert resumed.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]
    assert resumed_results == full_results
    assert "metric" in full_results
