"""Trainer state is owned by its parts: the hooks, the step (data seeds, grad scaler) and the
loop; the checkpoint gathers it through ``trainer.state_dict()``."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset

from fastreid.data.samplers import TrainingSampler
from fastreid.engine import DefaultTrainer, hooks
from fastreid.engine.data_stream import EpochDataStream
from fastreid.engine.train_loop import HookBase, SimpleTrainer
from fastreid.utils.checkpoint import Checkpointer
from fastreid.utils.env import get_rng_state, seed_all_rng

from .conftest import tiny_config


class _Points(Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.full((2,), float(index))


class _Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, batch: torch.Tensor):
        return {"loss": self.linear(batch / 12.0).pow(2).mean()}


def _step_trainer(seed: int = 0, sampler_seed: int = 5) -> SimpleTrainer:
    torch.manual_seed(seed)
    model = _Regression()
    sampler = BatchSampler(TrainingSampler(12, seed=sampler_seed), 4, drop_last=True)
    loader = DataLoader(_Points(), batch_sampler=sampler)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return SimpleTrainer(model, loader, optimizer, data_seed=seed, log_period=1)


class _Counter(HookBase):
    """A hook with state of its own: the number of steps it has seen."""

    def __init__(self, key: str = "steps_seen") -> None:
        self.key = key
        self.count = 0

    def after_step(self) -> None:
        self.count += 1

    def state_dict(self):
        return {self.key: self.count}

    def load_state_dict(self, state) -> None:
        self.count = int(state.get(self.key, 0))


def test_the_trainer_gathers_the_state_of_its_hooks_and_hands_it_back():
    trainer = _step_trainer()
    counter = _Counter()
    trainer.register_hooks([hooks.IterationTimer(), counter])
    trainer.train(0, 2, 3)
    state = trainer.state_dict()
    assert state["steps_seen"] == 6 and state["epoch"] == 1 and state["iteration"] == 5
    assert state["data_seed"] == 0 and state["sampler_seed"] == 5
    assert "grad_scaler" not in state  # float32: nothing to scale

    other = _step_trainer(seed=1, sampler_seed=99)
    restored = _Counter()
    other.register_hooks([restored])
    other.load_state_dict(state)
    assert restored.count == 6 and other.start_epoch == 2
    assert other.data_stream.seed == 0 and other.data_stream.sampler_seed == 5


def test_two_parts_claiming_one_checkpoint_key_is_an_error():
    trainer = _step_trainer()
    trainer.register_hooks([_Counter("data_seed")])  # the data stream's key
    with pytest.raises(KeyError, match="data_seed"):
        trainer.state_dict()


def test_the_step_trainer_saves_and_restores_its_grad_scaler():
    trainer = _step_trainer()
    trainer.grad_scaler = torch.amp.GradScaler("cpu", init_scale=512.0)
    state = trainer.state_dict()
    assert state["grad_scaler"]["scale"] == 512.0

    other = _step_trainer()
    other.grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0)
    other.load_state_dict(state)
    assert other.grad_scaler.get_scale() == 512.0


def test_the_data_stream_state_is_its_seeds_and_set_before_the_first_epoch():
    stream = _step_trainer(sampler_seed=7).data_stream
    assert stream.state_dict() == {"data_seed": 0, "sampler_seed": 7}
    stream.load_state_dict({"data_seed": 31, "sampler_seed": 8})
    assert stream.state_dict() == {"data_seed": 31, "sampler_seed": 8}
    stream.load_state_dict({})  # an older checkpoint without them keeps the current seeds
    assert stream.state_dict() == {"data_seed": 31, "sampler_seed": 8}
    list(stream.epoch_iterator(0, 1))
    with pytest.raises(RuntimeError, match="before the first epoch"):
        stream.load_state_dict({"sampler_seed": 9})


class _WorkerSeed(Dataset):
    """Each item is the torch seed of the worker that produced it."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([torch.initial_seed() % (2**31)])


def test_each_epoch_runs_fresh_workers_seeded_from_seed_and_epoch():
    """The training loader is not persistent (it would pretend to keep workers the stream
    restarts): every epoch's workers are seeded from (seed, epoch), so epoch 1 sees the
    same worker seeds whether or not this process ran epoch 0 (what --resume needs)."""
    from fastreid.data import build_reid_train_loader
    from fastreid.data.common import CommDataset

    def stream():
        sampler = BatchSampler(TrainingSampler(8, seed=3), 2, drop_last=True)
        loader = DataLoader(_WorkerSeed(), batch_sampler=sampler, num_workers=1)
        return EpochDataStream(loader, seed=11)

    straight = stream()
    epoch0 = [int(b[0]) for b in straight.epoch_iterator(0, 2)]
    epoch1 = [int(b[0]) for b in straight.epoch_iterator(1, 2)]
    resumed = [int(b[0]) for b in stream().epoch_iterator(1, 2, skip_batches=2)]
    assert resumed == epoch1
    assert epoch0[0] != epoch1[0]

    train_set = CommDataset([(f"{i}.jpg", i % 2, 0) for i in range(8)], None, relabel=True)
    loader = build_reid_train_loader(train_set, total_batch_size=2, num_workers=1)
    assert not loader.persistent_workers


def _old_layout_checkpoint(trainer: DefaultTrainer, path: str, **extra) -> None:
    """A checkpoint in the layout the previous release wrote (flat keys)."""
    data = {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "epoch": 0,
        "iteration": trainer.iters_per_epoch - 1,
        "rng_states": [get_rng_state()],
        "config": trainer.cfg.dump(),
    }
    data.update(extra)
    torch.save(data, path)


def test_a_checkpoint_of_the_previous_layout_resumes(synthetic_root, tmp_path):
    cfg = tiny_config(synthetic_root, str(tmp_path))
    seed_all_rng(0)
    trainer = DefaultTrainer(cfg)
    _old_layout_checkpoint(
        trainer,
        str(tmp_path / "model_0000.pth"),
        data_seed=777,
        sampler_seed=4242,
        best_metric=0.25,
    )
    Checkpointer(trainer.model, str(tmp_path)).tag_last_checkpoint("model_0000.pth")

    seed_all_rng(1)
    resumed = DefaultTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_epoch == 1
    state = resumed.state_dict()
    assert state["data_seed"] == 777 and state["sampler_seed"] == 4242
    assert state["best_metric"] == 0.25
    (best,) = [h for h in resumed._hooks if isinstance(h, hooks.BestCheckpointer)]
    assert best.best_metric == 0.25


def test_best_metric_resumes_from_model_best_when_it_is_higher(synthetic_root, tmp_path):
    """model_best is written after the epoch's checkpoint: its metric can be the newer."""
    checkpointer = Checkpointer(_Regression(), str(tmp_path), save_to_disk=True)
    best = hooks.BestCheckpointer(checkpointer)
    best.load_state_dict({"best_metric": 0.4})
    assert best.best_metric == 0.4
    checkpointer.save("model_best", tag_last=False, best_metric=0.7)
    best.load_state_dict({"best_metric": 0.4})
    assert best.best_metric == 0.7
    best.load_state_dict({"best_metric": 0.9})
    assert best.best_metric == 0.9
    os.remove(tmp_path / "model_best.pth")
    best.load_state_dict({})
    assert best.best_metric is None


def test_a_checkpoint_can_be_saved_to_another_folder(tmp_path):
    model = _Regression()
    checkpointer = Checkpointer(model, str(tmp_path / "run"), save_to_disk=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "copy").mkdir()
    path = checkpointer.save("checkpoint", folder=str(tmp_path / "copy"), epoch=3)
    assert path == str(tmp_path / "copy" / "checkpoint.pth")
    assert list((tmp_path / "run").iterdir()) == []  # the run's own folder is untouched
    assert checkpointer.save_dir == str(tmp_path / "run")

    other = _Regression()
    reader = Checkpointer(other, str(tmp_path / "copy"))
    assert reader.get_checkpoint_file() == path
    assert reader.resume_or_load("", resume=True)["epoch"] == 3
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
