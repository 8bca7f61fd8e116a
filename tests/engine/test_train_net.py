"""tools/train_net.py end to end: one process and two gloo processes, then --eval-only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fastreid.engine import default_argument_parser
from fastreid.engine.cli import main

from .conftest import REPO, tiny_config

METRICS = ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric")


def _train_net(cfg, tmp_path, *extra: str) -> str:
    config_file = str(tmp_path / "tiny.yml")
    with open(config_file, "w") as f:
        f.write(cfg.dump())
    env = dict(os.environ, FASTREID_PROGRESS="0", OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "train_net.py"),
        "--config-file",
        config_file,
        *extra,
    ]
    proc = subprocess.run(
        cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return config_file


def _last_eval(output_dir: str) -> dict:
    with open(os.path.join(output_dir, "metrics.json")) as f:
        lines = [json.loads(line) for line in f]
    evals = [line for line in lines if "metric" in line]
    assert evals, "metrics.json holds no evaluation"
    return {k: evals[-1][k] for k in METRICS}


def _eval_only(config_file: str, weights: str, output_dir: str) -> dict:
    args = default_argument_parser().parse_args(
        [
            "--config-file",
            config_file,
            "--eval-only",
            "MODEL.WEIGHTS",
            weights,
            "OUTPUT_DIR",
            output_dir,
        ]
    )
    results = main(args)
    return {k: results[k] for k in METRICS}


def test_train_net_writes_the_run_folder_and_eval_only_reproduces_its_figures(
    synthetic_root, tmp_path
):
    out = tmp_path / "run"
    cfg = tiny_config(synthetic_root, str(out), **{"SOLVER.MAX_EPOCH": 1, "TEST.EVAL_PERIOD": 1})
    config_file = _train_net(cfg, tmp_path)

    files = os.listdir(out)
    for name in (
        "config.yaml",
        "log.txt",
        "metrics.json",
        "model_final.pth",
        "model_best.pth",
        "last_checkpoint",
    ):
        assert name in files, name
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert "NUM_CLASSES: 8" in (out / "config.yaml").read_text()
    assert "total_loss" in (out / "log.txt").read_text()

    trained = _last_eval(str(out))
    reproduced = _eval_only(config_file, str(out / "model_final.pth"), str(tmp_path / "eval"))
    assert reproduced == pytest.approx(trained, abs=1e-9)


# Deterministic per-sample training: no random augmentation, GroupNorm instead of BatchNorm
# (per-process BN statistics are FastReID's documented DDP behaviour), SGD (Adam would
# magnify float rounding in near-zero gradients into +-lr steps).
DETERMINISTIC = {
    "SOLVER.MAX_EPOCH": 1,
    "TEST.EVAL_PERIOD": 1,
    "INPUT.FLIP.ENABLED": False,
    "INPUT.PADDING.ENABLED": False,
    "INPUT.REA.ENABLED": False,
    "MODEL.BACKBONE.NORM": "GN",
    "MODEL.HEADS.NORM": "GN",
    "SOLVER.OPT": "SGD",
    "SOLVER.BASE_LR": 0.05,
    "SOLVER.WARMUP_ITERS": 0,
}


def test_two_gloo_processes_train_and_evaluate_like_one_process(synthetic_root, tmp_path):
    import torch

    out = tmp_path / "ddp"
    cfg = tiny_config(synthetic_root, str(out), **DETERMINISTIC)
    config_file = _train_net(cfg, tmp_path, "--num-gpus", "2")

    log = (out / "log.txt").read_text()
    assert "World size: 2" in log
    distributed = _last_eval(str(out))
    single = _eval_only(config_file, str(out / "model_final.pth"), str(tmp_path / "eval"))
    # Features of each image do not depend on which process computed them.
    assert single == pytest.approx(distributed, abs=1e-4)

    # One process with the same global batch (SOLVER.IMS_PER_BATCH is global) ends with the
    # same weights: per-process batches, the gradient all-reduce and the cross-process
    # triplet mining add up to the single-process step.
    one = tmp_path / "one"
    _train_net(tiny_config(synthetic_root, str(one), **DETERMINISTIC), tmp_path)
    ddp_state = torch.load(out / "model_final.pth", weights_only=True)["model"]
    one_state = torch.load(one / "model_final.pth", weights_only=True)["model"]
    assert ddp_state.keys() == one_state.keys()
    for key, value in one_state.items():
        if value.is_floating_point():
            torch.testing.assert_close(ddp_state[key], value, rtol=1e-4, atol=2e-5, msg=key)
