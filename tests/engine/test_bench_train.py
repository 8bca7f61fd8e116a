"""benchmarks/bench_train.py --quick runs and reports a throughput per row."""

from __future__ import annotations

import importlib.util
import os

from .conftest import REPO


def test_bench_train_quick_smoke(tmp_path):
    path = os.path.join(REPO, "benchmarks", "bench_train.py")
    spec = importlib.util.spec_from_file_location("bench_train", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "bench.json"
    results = bench.main(["--quick", "--warmup", "0", "--iters", "1", "--output", str(output)])
    assert [r["mode"] for r in results] == ["fp32", "bf16"]
    assert all(r["images_per_sec"] > 0 and r["peak_memory_mb"] > 0 for r in results)
    assert output.exists()
