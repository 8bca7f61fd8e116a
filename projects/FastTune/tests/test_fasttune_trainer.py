"""The trial trainer without Ray: what it reports, what its checkpoints hold, and that a
restore continues the run exactly (or, after a PBT explore step, with the new values)."""

from __future__ import annotations

import copy
import os
import shutil

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.utils.checkpoint import load_checkpoint_file
from fastreid.utils.env import seed_all_rng
from projects.FastTune.fasttune import (
    TuneTrainer,
    add_tune_config,
    num_reports,
    restore_trainer_state,
    trial_metrics,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RECIPE = os.path.join(REPO, "configs", "Synthetic", "bagtricks_R18.yml")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> str:
    from fastreid.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, num_ids=16, seed=0, height=64, width=32, num_cams=3)
    return root


def tiny_cfg(root: str, output_dir: str, *opts):
    cfg = add_tune_config(get_cfg())
    cfg.merge_from_file(RECIPE)
    cfg.merge_from_list(
        [
            "DATASETS.ROOT", root, "OUTPUT_DIR", output_dir,
            "INPUT.SIZE_TRAIN", [64, 32], "INPUT.SIZE_TEST", [64, 32],
            "SOLVER.IMS_PER_BATCH", 16, "SOLVER.MAX_EPOCH", 2, "SOLVER.WARMUP_ITERS", 2,
            "SOLVER.STEPS", [2], "SOLVER.LOG_PERIOD", 2, "TEST.EVAL_PERIOD", 1,
            "DATALOADER.NUM_WORKERS", 0, "SEED", 0, *opts,
        ]
    )  # fmt: skip
    return cfg


def _by_name(trainer):
    """parameter name -> (optimizer state, lr, weight decay) of that parameter."""
    groups = {id(p): g for g in trainer.optimizer.param_groups for p in g["params"]}
    return {
        name: (trainer.optimizer.state[p], groups[id(p)]["lr"], groups[id(p)]["weight_decay"])
        for name, p in trainer.model.named_parameters()
        if id(p) in groups  # frozen parameters (the BNNeck bias) are not optimised
    }


class Recorder:
    """Stands in for Ray: keeps every report and a copy of every checkpoint folder."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.metrics = []
        self.checkpoints = []
        self.trainer = None
        self.snapshots = []  # per report: (model state, per-parameter optimizer view)

    def __call__(self, metrics, checkpoint_dir):
        self.metrics.append(dict(metrics))
        if self.trainer is not None:
            model = {k: v.clone() for k, v in self.trainer.model.state_dict().items()}
            self.snapshots.append((model, copy.deepcopy(_by_name(self.trainer))))
        folder = os.path.join(self.folder, f"report_{len(self.checkpoints)}")
        shutil.copytree(checkpoint_dir, folder)
        self.checkpoints.append(folder)


def build(cfg, report, seed=0):
    seed_all_rng(seed)  # what default_setup does before a trial builds its trainer
    return TuneTrainer(cfg, report=report)


def test_num_reports_counts_periodic_and_final_evaluations():
    assert num_reports(60, 10) == 6
    assert num_reports(14, 7) == 2
    assert num_reports(10, 3) == 4  # epochs 3, 6, 9 and the last
    assert num_reports(5, 0) == 1


def test_trial_metrics_plain_nested_and_missing():
    assert trial_metrics({"Rank-1": 80.0, "mAP": 60.0, "metric": 70.0}) == {
        "r1": 80.0,
        "map": 60.0,
        "score": 70.0,
    }
    nested = {"A": {"Rank-1": 10.0, "mAP": 20.0}, "B": {"Rank-1": 90.0, "mAP": 90.0}}
    assert trial_metrics(nested, "B")["score"] == 90.0
    assert trial_metrics(nested)["score"] == 15.0  # the first test set by default
    with pytest.raises(KeyError, match="Rank-1 and mAP"):
        trial_metrics({"Acc@1": 1.0})


@pytest.fixture(scope="module")
def full_run(synthetic_root, tmp_path_factory):
    """A 2-epoch trial with a report (and checkpoint) after each epoch."""
    tmp_path = tmp_path_factory.mktemp("full")
    full = Recorder(str(tmp_path / "reports"))
    trainer = build(tiny_cfg(synthetic_root, str(tmp_path / "out")), full)
    full.trainer = trainer
    # the search keeps the checkpoints: no periodic checkpoint files, no progress bar
    kinds = {type(h).__name__ for h in trainer._hooks}
    assert not kinds & {"PeriodicCheckpointer", "BestCheckpointer", "ProgressBar"}
    assert "TuneReportHook" in kinds
    trainer.train()
    full.trainer = None
    full.output_dir = str(tmp_path / "out")
    full.param_groups = len(trainer.optimizer.param_groups)
    return full


def test_reports_every_evaluation_and_a_restore_continues_exactly(
    synthetic_root, full_run, tmp_path
):
    full = full_run
    final_state = full.snapshots[-1][0]

    assert [m["epoch"] for m in full.metrics] == [1, 2]
    for m in full.metrics:
        assert m["score"] == pytest.approx((m["r1"] + m["map"]) / 2)
        assert 0.0 <= m["map"] <= 100.0
    assert full.metrics[-1]["score"] > 0
    assert not any(f.endswith(".pth") for f in os.listdir(full.output_dir))
    saved = load_checkpoint_file(os.path.join(full.checkpoints[0], "checkpoint.pth"))
    for key in ("model", "optimizer", "scheduler", "epoch", "iteration", "rng_states", "data_seed"):
        assert key in saved, key
    assert saved["epoch"] == 0 and saved["optimizer"]["state"]  # Adam moments are there

    # A new trial process restored after epoch 1; its random streams have moved on since
    # start-up (other initialisation, other draws), the checkpoint puts them back.
    resumed = Recorder(str(tmp_path / "resumed"))
    trainer2 = build(tiny_cfg(synthetic_root, str(tmp_path / "b")), resumed)
    seed_all_rng(123)
    restore_trainer_state(trainer2, full.checkpoints[0])
    assert trainer2.start_epoch == 1
    trainer2.train()
    assert [m["epoch"] for m in resumed.metrics] == [2]
    assert resumed.metrics == full.metrics[1:]
    for key, value in trainer2.model.state_dict().items():
        assert torch.equal(final_state[key], value), key


def test_pbt_explore_keeps_the_donors_progress_and_applies_the_new_values(
    synthetic_root, full_run, tmp_path
):
    # The donor: the full run as it was at its first report.
    donor_model, donor_params = full_run.snapshots[0]

    # The explored trial: 10x the learning rate and another weight decay, which also
    # regroups the parameters (weights and norms no longer share a group).
    cfg = tiny_cfg(
        synthetic_root, str(tmp_path / "b"), "SOLVER.BASE_LR", 0.01, "SOLVER.WEIGHT_DECAY", 1e-3
    )
    trainer = build(cfg, Recorder(str(tmp_path / "explored")))
    assert len(trainer.optimizer.param_groups) != full_run.param_groups
    configured_wd = {name: wd for name, (_, _, wd) in _by_name(trainer).items()}
    restore_trainer_state(trainer, full_run.checkpoints[0])

    assert trainer.start_epoch == 1
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(donor_model[key], value), key
    explored = _by_name(trainer)
    for name, (state, lr, wd) in explored.items():
        donor_state, donor_lr, donor_wd = donor_params[name]
        # Adam's moments and step count are the donor's ...
        assert torch.equal(state["exp_avg"], donor_state["exp_avg"]), name
        assert torch.equal(state["exp_avg_sq"], donor_state["exp_avg_sq"]), name
        assert int(state["step"]) == int(donor_state["step"]) == trainer.iters_per_epoch
        # ... the lr is 10x the donor's at the same point of the (linear in BASE_LR) schedule,
        # and the weight decay is the explored config's.
        assert lr == pytest.approx(10 * donor_lr), name
        assert wd == configured_wd[name], name
    changed = [n for n, (_, _, wd) in explored.items() if wd != donor_params[n][2]]
    assert changed and all(explored[n][2] == pytest.approx(1e-3) for n in changed)
    assert trainer.scheduler.last_epoch == trainer.iters_per_epoch


def test_restore_from_a_folder_without_checkpoint_is_named(synthetic_root, tmp_path):
    trainer = build(tiny_cfg(synthetic_root, str(tmp_path / "a")), Recorder(str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="No trial checkpoint"):
        restore_trainer_state(trainer, str(tmp_path / "empty"))
