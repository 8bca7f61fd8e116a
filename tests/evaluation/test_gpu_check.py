"""The GPU check script: skips cleanly without CUDA and runs every section's code on the CPU."""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    # Kept on the path while the tests run: the DDP check's spawned processes import it.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    yield gpu_check
    sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_says_so_and_exits_zero(gpu_check, tmp_path, capsys):
    output = tmp_path / "gpu.json"
    assert gpu_check.main(["--output", str(output)]) == 0
    assert "No CUDA device" in capsys.readouterr().out
    report = json.loads(output.read_text())
    assert report["results"] == [] and "No CUDA device" in report["skipped"]


def test_cpu_smoke_runs_every_section(gpu_check, tmp_path):
    output = tmp_path / "gpu.json"
    code = gpu_check.main(["--cpu-smoke", "--output", str(output)])
    report = json.loads(output.read_text())
    rows = {row["check"]: row for row in report["results"]}
    assert not [r for r in report["results"] if "error" in r], report["results"]
    assert code == 0
    for mode in ("fp32", "bf16", "channels_last", "channels_last+bf16+fused"):
        assert rows[f"train {mode}"]["value"] > 0
    assert rows["eval exact"]["ok"] and rows["eval exact"]["value"] > 0
    assert rows["faiss top-k (cpu)"]["ok"]
    assert rows["ddp gloo x2"]["ok"] and rows["ddp gloo x2"]["value"] > 0
    assert "tensorrt" in rows and ("skipped" in rows["tensorrt"] or rows["tensorrt"]["ok"])


def test_graph_parity_and_goals_are_read_off_the_train_rows(gpu_check):
    def row(batch, mode, value, first, last):
        return {
            "batch": batch,
            "mode": mode,
            "value": value,
            "first_loss": first,
            "last_loss": last,
        }

    rows = [
        row(64, "fp32", 2000.0, 7.0, 6.0),
        row(64, "amp_bf16+fused", 2500.0, 7.0, 6.1),
        row(64, "amp_bf16+fused+graph", 6400.0, 7.0, 6.1001),
        row(256, "amp_bf16+fused", 2600.0, 7.0, 5.0),
        row(256, "amp_bf16+fused+graph", 6000.0, 7.1, 5.0),  # another first loss: not parity
    ]
    parity = {r["check"]: r for r in gpu_check._graph_parity(rows)}
    assert parity["graph parity b64 amp_bf16+fused+graph"]["ok"] is True
    assert parity["graph parity b256 amp_bf16+fused+graph"]["ok"] is False
    goals = {g["goal"]: g for g in gpu_check.goals(rows)}
    assert goals["BoT R50 b64 AMP bf16 >= 6000 img/s"] == {
        "goal": "BoT R50 b64 AMP bf16 >= 6000 img/s",
        "value": 6400.0,
        "met": True,
    }
    assert goals["best AMP bf16 >= 1.5x plain fp32 (b64)"]["value"] == 3.2
