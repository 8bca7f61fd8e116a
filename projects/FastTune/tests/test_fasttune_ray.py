"""Real searches on Ray: PBT with the default search algorithm, a trial killed mid-run and
continued with ``--resume`` (its logs are appended to, HyperOpt's start point is tried), and a
2-trial search with 2 DDP (gloo) processes per trial on a Ray head this test starts."""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from fastreid.utils.checkpoint import load_checkpoint_file
from projects.FastTune.tune_net import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RECIPE = os.path.join(REPO, "configs", "Synthetic", "bagtricks_R18.yml")

TINY = [
    "INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]", "SOLVER.IMS_PER_BATCH", "16",
    "SOLVER.WARMUP_ITERS", "2", "SOLVER.STEPS", "[1]", "SOLVER.LOG_PERIOD", "2",
    "TEST.EVAL_PERIOD", "1", "DATALOADER.NUM_WORKERS", "0", "SEED", "0",
]  # fmt: skip
CHECKPOINT_KEYS = {"model", "optimizer", "scheduler", "epoch", "iteration", "rng_states"}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> str:
    from fastreid.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, num_ids=16, seed=0, height=64, width=32, num_cams=3)
    return root


def write_config(tmp_path) -> str:
    path = tmp_path / "search.yml"
    path.write_text(
        f"_BASE_: {RECIPE}\nTUNE:\n  SPACE:\n    SOLVER.BASE_LR: [loguniform, 1.0e-4, 1.0e-2]\n"
    )
    return str(path)


@pytest.mark.slow
def test_pbt_runs_without_the_default_search_algorithm(tmp_path, synthetic_root, capsys):
    out = tmp_path / "out"
    summary = cli(
        ["--config-file", write_config(tmp_path), "--pbt", "--num-trials", "2",
         "--resources-per-trial", "cpu=1", *TINY, "SOLVER.MAX_EPOCH", "2",
         "TUNE.PERTURBATION_INTERVAL", "1", "DATASETS.ROOT", synthetic_root,
         "OUTPUT_DIR", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "--srch-algo hyperopt is not used (PBT runs without a search algorithm)" in printed
    assert summary["folder"] == str(out / "pbt")
    assert [r["status"] for r in summary["rows"]] == ["completed", "completed"]
    assert (out / "pbt" / "best_config.yaml").is_file()


def _kill_after_first_report(folder: str, killed: list, stop: threading.Event) -> None:
    """Kill the trial's process (its pid is in the trial folder's run.lock) as soon as Ray
    has recorded the trial's first report."""
    while not stop.is_set():
        for result in glob.glob(os.path.join(folder, "run_trial_*", "result.json")):
            trial = os.path.dirname(result)
            lock = os.path.join(trial, "run.lock")
            if os.path.getsize(result) > 0 and os.path.isfile(lock):
                with open(lock) as f:
                    pid = int(f.read().split()[0])
                with open(os.path.join(trial, "log.txt")) as f:
                    killed.append(f.read())
                os.kill(pid, signal.SIGKILL)
                return
        time.sleep(0.1)


# Enough epochs that the trial is still running when the kill comes after its first report.
EPOCHS = 8


@pytest.mark.slow
def test_a_killed_trial_continues_with_resume_and_appends_to_its_logs(
    tmp_path, synthetic_root, capsys
):
    out = tmp_path / "out"
    args = [
        "--config-file", write_config(tmp_path), "--srch-algo", "hyperopt", "--num-trials", "1",
        "--resources-per-trial", "cpu=1", *TINY, "SOLVER.MAX_EPOCH", str(EPOCHS),
        "TUNE.POINTS_TO_EVALUATE", "[{'SOLVER.BASE_LR': 0.002}]",
        "DATASETS.ROOT", synthetic_root, "OUTPUT_DIR", str(out),
    ]  # fmt: skip
    folder = str(out / "hyperopt")
    killed: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_after_first_report, args=(folder, killed, stop))
    watcher.start()
    try:
        with pytest.raises(SystemExit, match="Every trial failed"):
            cli(args)
    finally:
        stop.set()
        watcher.join()
    assert killed, "the trial was never killed"
    (trial,) = glob.glob(os.path.join(folder, "run_trial_*"))
    with open(os.path.join(trial, "metrics.json")) as f:
        first_metrics = f.read()
    capsys.readouterr()

    summary = cli([*args, "--resume"])
    (row,) = summary["rows"]
    assert row["status"] == "completed" and row["path"] == trial
    assert row["SOLVER.BASE_LR"] == 0.002  # HyperOpt's start point
    epochs = [h["epoch"] for h in row["history"]]
    assert epochs == sorted(set(epochs)) and epochs[-1] == EPOCHS and epochs[0] == 1  # continued

    with open(os.path.join(trial, "log.txt")) as f:
        log = f.read()
    assert log.startswith(killed[0])  # the killed run's lines are kept ...
    assert log.count("Rank of current process") == 2  # ... and the restored run appended
    with open(os.path.join(trial, "metrics.json")) as f:
        metrics = f.read()
    assert metrics.startswith(first_metrics)
    evals = [json.loads(line)["iteration"] for line in metrics.splitlines() if "Rank-1" in line]
    # Every epoch's evaluation is in the log (each is written before it is reported), in order;
    # only the epoch the kill interrupted after its evaluation may appear twice.
    iters_per_epoch = 57 // 16  # the synthetic training set at batch 16
    assert sorted(set(evals)) == [iters_per_epoch * (e + 1) - 1 for e in range(EPOCHS)]
    assert evals == sorted(evals) and len(evals) <= EPOCHS + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_head(head: subprocess.Popen, port: int) -> None:
    """Stop the head this test started (its own process group) and every Ray process in it,
    and forget its address (`ray start` records it for later `ray.init()` calls)."""
    from ray._common.utils import get_ray_address_file

    if head.poll() is None:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # what is left of the group
    except ProcessLookupError:
        pass
    head.wait(timeout=30)
    recorded = get_ray_address_file(None)
    try:
        with open(recorded) as f:
            ours = f.read().strip().endswith(f":{port}")
        if ours:
            os.remove(recorded)
    except FileNotFoundError:
        pass


@pytest.mark.slow
def test_a_ddp_search_on_a_ray_head_started_here(tmp_path, synthetic_root):
    import ray

    assert not ray.is_initialized()
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH", "")]))
    env["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    head = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block",
         "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
         "--num-gpus", "0", "--object-store-memory", str(100 * 1024**2),
         "--include-dashboard", "false", "--disable-usage-stats"],
        env=env, cwd=str(tmp_path), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, "ray start --head exited"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not start in 120 s"
                time.sleep(0.5)
        out = tmp_path / "out"
        summary = cli(
            ["--config-file", write_config(tmp_path), "--srch-algo", "random",
             "--num-trials", "2", "--workers-per-trial", "2", "--resources-per-trial", "cpu=1",
             "--address", f"127.0.0.1:{port}", *TINY, "SOLVER.MAX_EPOCH", "2",
             "DATASETS.ROOT", synthetic_root, "OUTPUT_DIR", str(out), "TUNE.SEED", "1"]
        )  # fmt: skip
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop_head(head, port)

    rows = summary["rows"]
    assert len(rows) == 2 and {r["status"] for r in rows} == {"completed"}
    for row in rows:
        # the same reports as a one-process trial: r1, mAP, score after every epoch
        assert [h["epoch"] for h in row["history"]] == [1, 2]
        assert row["score"] == pytest.approx((row["r1"] + row["map"]) / 2)
        assert 0 < row["map"] <= 100
        with open(row["log"]) as f:
            assert "Rank of current process: 0. World size: 2" in f.read()
        with open(row["log"] + ".rank1") as f:
            assert "Rank of current process: 1. World size: 2" in f.read()
        # ... and the same checkpoints: the full trainer state, RNG states of both ranks
        (last,) = sorted(glob.glob(os.path.join(row["path"], "checkpoint_*")))[-1:]
        saved = load_checkpoint_file(os.path.join(last, "checkpoint.pth"))
        assert CHECKPOINT_KEYS <= set(saved) and saved["epoch"] == 1
        assert len(saved["rng_states"]) == 2
