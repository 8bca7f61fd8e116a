"""The end-to-end GPU benchmark: its Market-size plan, and its smoke mode on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _module():
    spec = importlib.util.spec_from_file_location(
        "gpu_e2e", os.path.join(ROOT, "benchmarks", "gpu_e2e.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plan_has_market_sizes_and_every_query_a_match_in_another_camera():
    e2e = _module()
    rows = e2e.plan_images(e2e.MARKET, seed=0)
    folders = Counter(folder for _, _, folder in rows)
    assert folders == {"bounding_box_train": 12936, "query": 3368, "bounding_box_test": 15913}
    train_ids = {pid for pid, _, folder in rows if folder == "bounding_box_train"}
    assert len(train_ids) == 751
    query = {(pid, cam) for pid, cam, folder in rows if folder == "query"}
    assert len({pid for pid, _ in query}) == 750 and len(query) == 3368  # one per (id, camera)
    gallery = Counter(pid for pid, _, folder in rows if folder == "bounding_box_test")
    assert gallery[0] == 2793
    gallery_cams = {(pid, cam) for pid, cam, folder in rows if folder == "bounding_box_test"}
    for pid, cam in query:
        assert any(p == pid and c != cam for p, c in gallery_cams), (pid, cam)


def test_smoke_mode_generates_trains_and_evaluates(tmp_path, capsys):
    e2e = _module()
    output = tmp_path / "gpu_e2e.json"
    e2e.main(
        ["--smoke", "--paths", "device", "--epochs", "1", "--workers", "1", "--output", str(output)]
    )
    result = json.loads(output.read_text())
    (row,) = result["rows"]
    assert row["data_path"] == "device" and row["exit_code"] == 0, row.get("log_tail")
    assert 0 <= row["mAP"] <= 100 and row["seconds"] > 0
    assert result["setup"]["images"]["train"] == 64
    assert "Rank-1" in capsys.readouterr().out
