"""The search command line: one clear error per kind of bad input (before Ray starts), and a
real 3-trial search on a tiny synthetic set, one trial of which crashes."""

from __future__ import annotations

import csv
import json
import os
import re
import socket

import pytest

from fastreid.config import get_cfg
from projects.FastTune.fasttune.search import parse_resources
from projects.FastTune.tune_net import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RECIPE = os.path.join(REPO, "configs", "Synthetic", "bagtricks_R18.yml")

TINY = [
    "INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]",
    "SOLVER.MAX_EPOCH", "2", "SOLVER.WARMUP_ITERS", "2", "SOLVER.STEPS", "[1]",
    "SOLVER.LOG_PERIOD", "2", "TEST.EVAL_PERIOD", "1", "DATALOADER.NUM_WORKERS", "0",
]  # fmt: skip


def write_config(tmp_path, space: str) -> str:
    path = tmp_path / "search.yml"
    path.write_text(f"_BASE_: {RECIPE}\nTUNE:\n  SPACE:\n{space}")
    return str(path)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> str:
    """A valid dataset root, so each case fails on its own bad input only."""
    from fastreid.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, num_ids=4, seed=0, height=16, width=8, num_cams=2)
    return root


GOOD_SPACE = "    SOLVER.BASE_LR: [loguniform, 1.0e-4, 1.0e-2]\n"


@pytest.mark.parametrize(
    "space, args, message",
    [
        (GOOD_SPACE, ["--srch-algo", "grid"], "Unknown search algorithm 'grid' (--srch-algo)"),
        (GOOD_SPACE, ["--sched", "median"], "Unknown scheduler 'median' (--sched)"),
        (GOOD_SPACE, ["--num-trials", "0"], "--num-trials must be at least 1, got 0"),
        (GOOD_SPACE, ["--srch-algo", "bohb", "--sched", "asha"], "HyperBandForBOHB"),
        (GOOD_SPACE, ["--pbt", "--sched", "asha"], "--pbt means --sched pbt"),
        (GOOD_SPACE, ["--resources-per-trial", "cpu=2,tpu=1"], "'tpu=1' is not cpu=N or gpu=N"),
        (
            "    SOLVER.BASE_LRR: [loguniform, 1.0e-4, 1.0e-2]\n",
            [],
            "Unknown config key 'SOLVER.BASE_LRR' in TUNE.SPACE. Closest valid keys: SOLVER.BASE_LR",
        ),
        (
            "    SOLVER.BASE_LR: [lognormal, 1.0e-4, 1.0e-2]\n",
            [],
            "TUNE.SPACE, key SOLVER.BASE_LR: unknown distribution 'lognormal'",
        ),
        (
            "    SOLVER.BASE_LR: [uniform, 0.1]\n",
            [],
            "write uniform as [uniform, low, high] (2 numbers); got [0.1]",
        ),
        (GOOD_SPACE, ["--address", "127.0.0.1:PORT"], "Cannot reach the Ray cluster at --address"),
    ],
)
def test_bad_input_gets_one_error_line_and_exit_code_2(
    tmp_path, capsys, tiny_root, space, args, message
):
    import ray

    args = [a.replace("PORT", str(closed_port())) for a in args]
    config = write_config(tmp_path, space)
    with pytest.raises(SystemExit) as exit_info:
        cli(
            ["--config-file", config, *args, "DATASETS.ROOT", tiny_root,
             "OUTPUT_DIR", str(tmp_path / "out")]
        )  # fmt: skip
    assert exit_info.value.code == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 1 and message in err_lines[0], err_lines
    assert not ray.is_initialized()  # rejected before Ray started


def test_fastreids_defaults_start_points_and_pbt_options():
    from projects.FastTune.fasttune import add_tune_config, parse_space
    from projects.FastTune.fasttune.search import (
        SearchOptions,
        check_options,
        experiment_name,
        max_concurrent_trials,
        points_to_evaluate,
    )

    cfg = add_tune_config(get_cfg())
    assert (cfg.TUNE.GRACE_PERIOD, cfg.TUNE.PERTURBATION_INTERVAL, cfg.TUNE.NUM_TO_KEEP) == (
        2,
        2,
        10,
    )
    assert max_concurrent_trials(cfg, check_options(SearchOptions(srch_algo="bohb"))) == 4
    assert max_concurrent_trials(cfg, check_options(SearchOptions(srch_algo="hyperopt"))) is None
    cfg.TUNE.MAX_CONCURRENT = 2
    assert max_concurrent_trials(cfg, "bohb-hyperband") == 2

    # PBT wins over any search algorithm, BOHB included, and gets its own folder.
    pbt = SearchOptions(srch_algo="bohb", sched="pbt")
    assert check_options(pbt) == "pbt" and experiment_name(cfg, pbt) == "pbt"

    params = parse_space(
        cfg,
        {
            "SOLVER.BASE_LR": ["loguniform", 1e-4, 1e-2],
            "INPUT.SIZE_TRAIN": ["choice", [[256, 128], [384, 128]]],
            "DATALOADER.NUM_INSTANCE": ["randint", 2, 9],
        },
    )
    good = {"SOLVER.BASE_LR": 3.5e-4, "INPUT.SIZE_TRAIN": [384, 128], "DATALOADER.NUM_INSTANCE": 4}
    cfg.TUNE.POINTS_TO_EVALUATE = [good]
    (point,) = points_to_evaluate(cfg, params)
    # in the searcher's encoding, and decoded back to the same config values
    assert point == {
        "SOLVER.BASE_LR": 3.5e-4,
        "INPUT.SIZE_TRAIN": "[384, 128]",
        "DATALOADER.NUM_INSTANCE": 4,
    }
    assert [p.decode(point[p.key]) for p in params] == [3.5e-4, [384, 128], 4]
    for bad, message in [
        ({"INPUT.SIZE_TRAIN": [128, 64]}, "is not one of its choices"),
        ({"DATALOADER.NUM_INSTANCE": 9}, "is outside randint[2, 9]"),
        ({"SOLVER.BASE_LR": 1e-3}, "gives no value for INPUT.SIZE_TRAIN"),
    ]:
        cfg.TUNE.POINTS_TO_EVALUATE = [bad if "gives no value" in message else {**good, **bad}]
        with pytest.raises(ValueError, match=re.escape(message)):
            points_to_evaluate(cfg, params)


def test_resources_parse_with_fractions():
    assert parse_resources("cpu=2,gpu=0.5") == {"cpu": 2.0, "gpu": 0.5}
    assert parse_resources(" cpu=1 ") == {"cpu": 1.0}
    with pytest.raises(ValueError, match="cpu=0 must be a positive number"):
        parse_resources("cpu=0")


def test_a_three_trial_search_with_a_crashing_trial(tmp_path, capsys):
    from fastreid.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path / "datasets")
    generate_synthetic_dataset(root, num_ids=16, seed=0, height=64, width=32, num_cams=3)
    # A batch of 100000 images is more than the training set: that trial fails at start.
    config = write_config(
        tmp_path,
        "    SOLVER.BASE_LR: [loguniform, 1.0e-4, 1.0e-2]\n"
        "    SOLVER.IMS_PER_BATCH: [choice, [16, 100000]]\n",
    )
    out = tmp_path / "out"
    summary = cli(
        ["--config-file", config, "--num-trials", "3", "--srch-algo", "random",
         "--resources-per-trial", "cpu=1", *TINY, "DATASETS.ROOT", root, "OUTPUT_DIR", str(out),
         "TUNE.SEED", "1"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    rows = summary["rows"]
    assert len(rows) == 3
    failed = [r for r in rows if r["status"] == "failed"]
    ran = [r for r in rows if r["status"] != "failed"]
    assert failed and ran, [(r["SOLVER.IMS_PER_BATCH"], r["status"]) for r in rows]
    for row in failed:
        assert row["SOLVER.IMS_PER_BATCH"] == 100000
        assert "SOLVER.IMS_PER_BATCH" in row["error"]
        assert os.path.isfile(row["log"])  # the trial's own log, named in the report
        assert f"trial {row['trial']} failed: " in printed and row["log"] in printed
    for row in ran:
        assert row["SOLVER.IMS_PER_BATCH"] == 16
        assert row["score"] == pytest.approx((row["r1"] + row["map"]) / 2)
        assert [h["epoch"] for h in row["history"]][0] == 1
    assert row["trial"] in printed and "score" in printed  # the table

    folder = out / "random"
    with open(folder / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 3
    trials = json.loads((folder / "results.json").read_text())["trials"]
    assert sorted(t["status"] for t in trials) == sorted(r["status"] for r in rows)
    assert (folder / "search_plot.png").stat().st_size > 10_000

    # best_config.yaml: the best trial's full config, for train_net (no TUNE keys)
    best = summary["best"]
    assert best["score"] == max(r["score"] for r in ran)
    cfg = get_cfg()
    cfg.merge_from_file(str(folder / "best_config.yaml"))
    assert cfg.SOLVER.BASE_LR == pytest.approx(best["SOLVER.BASE_LR"])
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.MAX_EPOCH == 2
    assert cfg.DATASETS.ROOT == root and cfg.INPUT.SIZE_TRAIN == [64, 32]
    assert cfg.OUTPUT_DIR == os.path.join(str(out), "random", "best_retrain")

    # The same search again without --resume is refused rather than mixed in.
    with pytest.raises(SystemExit):
        cli(["--config-file", config, "--srch-algo", "random", *TINY, "DATASETS.ROOT", root,
             "OUTPUT_DIR", str(out)])  # fmt: skip
    assert "add --resume to continue it" in capsys.readouterr().err
