"""Shared pieces of the bad-input tests (one clear error that names the fix: never a hang,
never only a traceback from deep inside torch/yacs/PIL, never a half-written file).

The tests themselves live with the package whose input they check: tests/config,
tests/data, tests/evaluation, tests/solver, tests/utils and tests/engine
(``test_bad_input_*.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastreid.config import get_cfg
from fastreid.utils.errors import exit_on_bad_input

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "configs" / "Synthetic" / "bagtricks_R18.yml")
SMALL = [
    "SOLVER.MAX_EPOCH", "1", "INPUT.SIZE_TRAIN", "[64,32]", "INPUT.SIZE_TEST", "[64,32]",
    "SOLVER.IMS_PER_BATCH", "16", "DATALOADER.NUM_WORKERS", "0",
]  # fmt: skip


def small_cfg(*opts: str):
    cfg = get_cfg()
    cfg.merge_from_file(RECIPE)
    cfg.merge_from_list(SMALL + list(opts))
    return cfg


# Generous: these tests catch hangs, and a busy 2-core machine needs a minute to start torch twice.
def run_python(
    *args: str, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "FASTREID_DEBUG"}
    full_env.update(PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_line(capsys, func, *args) -> str:
    """Run ``func`` as a tool's main does; return its single ``error:`` line."""
    with pytest.raises(SystemExit) as info:
        exit_on_bad_input(func, *args)
    assert info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def trainer_cfg(root: Path, output_dir: Path, *opts: str):
    return small_cfg(
        "DATASETS.ROOT", str(root), "OUTPUT_DIR", str(output_dir), "MODEL.BACKBONE.DEPTH", "18x",
        "INPUT.SIZE_TRAIN", "[32,16]", "INPUT.SIZE_TEST", "[32,16]", "SOLVER.LOG_PERIOD", "1",
        "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "5", *opts,
    )  # fmt: skip
