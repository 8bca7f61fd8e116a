"""The training step trains, records losses without per-step syncs and stops on NaN."""

from __future__ import annotations

import itertools

import pytest
import torch

from fastreid.data import build_reid_train_loader
from fastreid.engine import AMPTrainer, SimpleTrainer
from fastreid.modeling import build_model
from fastreid.solver import build_optimizer

from .conftest import tiny_config


def _model_optimizer_batch(root, tmp_path, lr=1e-3):
    cfg = tiny_config(root, str(tmp_path), **{"SOLVER.BASE_LR": lr})
    loader = build_reid_train_loader(cfg)
    cfg.MODEL.HEADS.NUM_CLASSES = loader.dataset.num_classes
    batch = next(iter(loader))
    model = build_model(cfg)
    return model, build_optimizer(cfg, model), batch


def test_steps_on_a_fixed_batch_lower_the_loss_and_update_every_trained_parameter(
    synthetic_root, tmp_path
):
    model, optimizer, batch = _model_optimizer_batch(synthetic_root, tmp_path)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = SimpleTrainer(model, itertools.repeat(batch), optimizer, log_period=100)
    trainer.train(0, 1, 6)

    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 6  # flushed once, at the epoch's end, with each step's value
    assert losses[-1] < losses[0]
    unchanged = [
        n for n, p in model.named_parameters() if n in before and torch.equal(p, before[n])
    ]
    assert unchanged == []


def test_nan_loss_stops_training_naming_the_iteration_and_the_losses(synthetic_root, tmp_path):
    model, optimizer, batch = _model_optimizer_batch(synthetic_root, tmp_path)
    bad = dict(batch, images=torch.full(batch["images"].shape, float("nan")))
    stream = itertools.chain([batch, batch], itertools.repeat(bad))
    trainer = SimpleTrainer(model, stream, optimizer, log_period=1)
    with pytest.raises(FloatingPointError, match=r"iteration 2 .*loss_cls=nan"):
        trainer.train(0, 1, 5)
    assert trainer.iter == 2  # stopped at the first bad step


def test_cpu_bf16_autocast_step_trains(synthetic_root, tmp_path):
    model, optimizer, batch = _model_optimizer_batch(synthetic_root, tmp_path)
    trainer = AMPTrainer(
        model, itertools.repeat(batch), optimizer, device_type="cpu", dtype=torch.bfloat16
    )
    trainer.train(0, 1, 2)
    assert trainer.grad_scaler is None
    assert torch.isfinite(torch.tensor(trainer.storage.history("total_loss").latest()))
