"""Smoke test of the data-pipeline benchmark."""

from __future__ import annotations

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_data_quick_writes_table_and_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "bench_data", os.path.join(ROOT, "benchmarks", "bench_data.py")
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "bench_data.json"
    bench.main(["--quick", "--output", str(output)])
    assert "speedup" in capsys.readouterr().out
    rows = json.loads(output.read_text())["rows"]
    assert rows and all(row["fastreid_img_s"] > 0 and row["pil_baseline_img_s"] > 0 for row in rows)
    device_rows = json.loads(output.read_text())["device_rows"]
    assert {row["recipe"] for row in device_rows} == {"BoT", "SBS"}
    assert all(row["device_path_img_s"] > 0 and row["cache_build_s"] > 0 for row in device_rows)
