#!/usr/bin/env python
"""Re-run the searches behind FastTune's README figures and compare with the stored results.

    python projects/FastTune/reproduce.py                 # every figure; compare, keep stored
    python projects/FastTune/reproduce.py --only ddp      # one of them
    python projects/FastTune/reproduce.py --write         # (re)write projects/FastTune/results/

Each search runs on the tiny synthetic set (16 ids, 64x32, made in a temporary folder) with
``configs/search_tiny.yml``, fixed ``SEED`` and ``TUNE.SEED``, one CPU per trial process. The
stored file holds the command line and every trial's searched value, status, R1, mAP and score
(rounded to 2 decimals), plus the run time measured then (not compared: it depends on the load).
Exit code 1 when a reproduced score differs from the stored one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(HERE, "results")
CONFIG = "projects/FastTune/configs/search_tiny.yml"

# name -> tune_net.py arguments (after --config-file; DATASETS.ROOT and OUTPUT_DIR are added)
SEARCHES: Dict[str, List[str]] = {
    "random_asha": ["--srch-algo", "random", "--num-trials", "3", "--resources-per-trial", "cpu=1"],
    "ddp": [
        "--srch-algo", "random", "--num-trials", "2", "--workers-per-trial", "2",
        "--resources-per-trial", "cpu=1",
    ],
}  # fmt: skip
KEYS = ("status", "SOLVER.BASE_LR", "DATALOADER.NUM_INSTANCE", "r1", "map", "score", "epochs")


def _round(key: str, value: Any) -> Any:
    """Metrics to 2 decimals (as printed), searched values to 4 significant digits."""
    if not isinstance(value, float):
        return value
    return round(value, 2) if key in ("r1", "map", "score") else float(f"{value:.4g}")


def run(name: str, workdir: str) -> Dict[str, Any]:
    sys.path.insert(0, REPO)
    from fastreid.data.synthetic import generate_synthetic_dataset
    from projects.FastTune.tune_net import cli

    root = os.path.join(workdir, "datasets")
    if not os.path.isdir(root):
        generate_synthetic_dataset(root, num_ids=16, seed=0, height=64, width=32, num_cams=3)
    args = ["--config-file", CONFIG, *SEARCHES[name]]
    start = time.monotonic()
    summary = cli([*args, "DATASETS.ROOT", root, "OUTPUT_DIR", os.path.join(workdir, name, "out")])
    seconds = time.monotonic() - start
    trials = sorted(
        ({k: _round(k, row.get(k)) for k in KEYS} for row in summary["rows"]),
        key=lambda t: (t["SOLVER.BASE_LR"], t["DATALOADER.NUM_INSTANCE"]),
    )
    return {
        "command": "python projects/FastTune/tune_net.py "
        + " ".join(args)
        + " DATASETS.ROOT <synthetic set: python -m fastreid.data.synthetic --output DIR "
        "--num-ids 16 --height 64 --width 32 --num-cams 3> OUTPUT_DIR <any>",
        "trials": trials,
        "best_score": max((t["score"] for t in trials if t["score"] is not None), default=None),
        "run_time_s": round(seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SEARCHES), action="append")
    parser.add_argument("--write", action="store_true", help="store the results")
    args = parser.parse_args()
    os.chdir(REPO)
    status = 0
    with tempfile.TemporaryDirectory(prefix="fasttune-figures-") as workdir:
        for name in args.only or sorted(SEARCHES):
            result = run(name, workdir)
            path = os.path.join(RESULTS, f"{name}.json")
            stored = None
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    stored = json.load(f)
            same = stored is not None and stored["trials"] == result["trials"]
            print(f"{name}: {json.dumps(result['trials'])}")
            verdict = (
                "no stored result in" if stored is None else "same as" if same else "DIFFERS from"
            )
            print(f"{name}: {verdict} {path}", flush=True)
            if stored is not None and not same:
                status = 1
            if args.write:
                from fastreid.utils.file_io import atomic_write_text

                os.makedirs(RESULTS, exist_ok=True)
                atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
