"""Shared fixtures of the engine tests: a tiny synthetic re-ID set and a config for it."""

from __future__ import annotations

import os

import pytest

from fastreid.config import CfgNode, get_cfg

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(REPO, "configs", "Synthetic", "bagtricks_R18.yml")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> str:
    """A datasets root holding a tiny SyntheticReID (8 train ids, 64x32 images)."""
    from fastreid.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, num_ids=16, seed=0, height=64, width=32, num_cams=3)
    return root


def tiny_config(root: str, output_dir: str, **overrides) -> CfgNode:
    """The CPU recipe shrunk for tests: R18 at 64x32, batch 16 (3 iterations per epoch)."""
    cfg = get_cfg()
    cfg.merge_from_file(RECIPE)
    opts = {
        "DATASETS.ROOT": root,
        "OUTPUT_DIR": output_dir,
        "INPUT.SIZE_TRAIN": [64, 32],
        "INPUT.SIZE_TEST": [64, 32],
        "SOLVER.IMS_PER_BATCH": 16,
        "SOLVER.MAX_EPOCH": 2,
        "SOLVER.WARMUP_ITERS": 2,
        "SOLVER.STEPS": [1],
        "SOLVER.CHECKPOINT_PERIOD": 1,
        "SOLVER.LOG_PERIOD": 2,
        "TEST.EVAL_PERIOD": 2,
        "DATALOADER.NUM_WORKERS": 0,
        "SEED": 0,
    }
    opts.update(overrides)
    for key, value in opts.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


class Killed(RuntimeError):
    """Stands for the process being killed in the middle of training."""


def train_until_killed(trainer) -> None:
    """Train ``trainer`` until it is stopped, as a kill would stop it, in the middle of its
    second epoch (its checkpoint of the first epoch is on disk)."""
    from fastreid.engine import CallbackHook

    def kill(t) -> None:
        if t.iter == t.iters_per_epoch + 1:
            raise Killed

    trainer.register_hooks([CallbackHook(after_step=kill)])
    with pytest.raises(Killed):
        trainer.train()
