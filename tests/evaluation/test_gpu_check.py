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
    for mode in ("fp32", "bf16", "channels_last"):
        assert rows[f"train {mode}"]["value"] > 0
    assert rows["eval exact"]["ok"] and rows["eval exact"]["value"] > 0
    assert rows["faiss top-k (cpu)"]["ok"]
    assert rows["ddp gloo x2"]["ok"] and rows["ddp gloo x2"]["value"] > 0
    assert "tensorrt" in rows and ("skipped" in rows["tensorrt"] or rows["tensorrt"]["ok"])
