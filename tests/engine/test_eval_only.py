"""``--eval-only`` on a trained folder: reads the checkpoint once, hangs no config on the
model, and leaves every file training wrote byte-for-byte as it was."""

from __future__ import annotations

import argparse
import os

import torch

from fastreid.engine import DefaultTrainer
from fastreid.engine.cli import main
from fastreid.utils.env import seed_all_rng

from .conftest import tiny_config


def _snapshot(folder) -> dict:
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def test_eval_only_rewrites_nothing_in_the_training_folder(synthetic_root, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    cfg = tiny_config(synthetic_root, str(folder), **{"SOLVER.MAX_EPOCH": 1, "TEST.EVAL_PERIOD": 1})
    seed_all_rng(0)
    trainer = DefaultTrainer(cfg)
    trained = trainer.train()
    num_classes = trainer.cfg.MODEL.HEADS.NUM_CLASSES
    del trainer
    (folder / "log.txt").write_text("training's log\n")  # as default_setup leaves it
    before = _snapshot(folder)
    assert {"config.yaml", "model_final.pth", "log.txt", "metrics.json"} <= set(before)

    weights = str(folder / "model_final.pth")
    reads = []
    real_load = torch.load

    def counting_load(path, *args, **kwargs):
        reads.append(str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    tested = []
    real_test = DefaultTrainer.test.__func__

    def spying_test(cls, test_cfg, model):
        tested.append((test_cfg, model))
        return real_test(cls, test_cfg, model)

    monkeypatch.setattr(DefaultTrainer, "test", classmethod(spying_test))
    args = argparse.Namespace(
        config_file=str(folder / "config.yaml"),
        resume=False,
        eval_only=True,
        overwrite=False,
        root="",
        # NUM_CLASSES 0: the classifier is sized from the checkpoint, read that same once.
        opts=["MODEL.WEIGHTS", weights, "OUTPUT_DIR", str(folder), "MODEL.HEADS.NUM_CLASSES", 0],
    )
    results = main(args)

    assert reads.count(weights) == 1, reads
    ((test_cfg, model),) = tested
    assert not hasattr(model, "cfg")
    assert num_classes > 0 and test_cfg.MODEL.HEADS.NUM_CLASSES == num_classes
    assert results["metric"] == trained["metric"]

    after = _snapshot(folder)
    changed = [name for name, data in before.items() if after.get(name) != data]
    assert changed == []
    assert os.path.isfile(folder / "log_eval.txt")
