"""docs/add_a_backbone.md runs as written: its files are extracted, its check script prints
what the page says, and its training script trains the new backbone for a few iterations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "add_a_backbone.md"


def _blocks(kind: str):
    return re.findall(rf"```{kind}\n(.*?)```", PAGE.read_text(), flags=re.S)


def _write_files(folder: Path) -> None:
    for block in _blocks("python") + _blocks("yaml"):
        first, _, _ = block.partition("\n")
        name = first.lstrip("# ").strip()
        assert re.fullmatch(r"[\w.]+\.(py|yml)", name), first
        (folder / name).write_text(block)
    # The recipe's _BASE_ names a shipped recipe: found from here through the packaged lookup.
    assert not (folder / "configs").exists()


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", FASTREID_PROGRESS="0")
    env.update(extra)
    return env


def test_the_page_runs_as_written(tmp_path):
    _write_files(tmp_path)
    proc = subprocess.run(
        [sys.executable, "check_tiny.py"], cwd=tmp_path, env=_env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (expected,) = _blocks("text")
    assert proc.stdout == expected


def test_the_training_script_trains_the_new_backbone(tmp_path):
    from fastreid.data.synthetic import generate_synthetic_dataset

    _write_files(tmp_path)
    root = tmp_path / "datasets"
    generate_synthetic_dataset(str(root), num_ids=8, seed=0, height=64, width=32, num_cams=3)
    proc = subprocess.run(
        [sys.executable, "train_tiny.py", "--config-file", "tiny_synthetic.yml",
         "DATASETS.ROOT", str(root), "OUTPUT_DIR", "run", "INPUT.SIZE_TRAIN", "[64, 32]",
         "INPUT.SIZE_TEST", "[64, 32]", "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_EPOCH", "1",
         "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "[1]", "TEST.EVAL_PERIOD", "1",
         "DATALOADER.NUM_WORKERS", "0"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "build_tiny_backbone" in log
    assert (tmp_path / "run" / "model_final.pth").is_file()
