#!/usr/bin/env python
"""Measure a README figure of a project and store it: runs the project's ``train_net.py``
with the given arguments ``--runs`` times, each in a process of its own, and writes every
run's results, the command and whether the runs agree to ``projects/<Name>/results/<name>.json``.

    python tools/record_results.py --project FastAttr --name synthetic_nonzero_mean -- \\
        --config-file projects/FastAttr/configs/synthetic.yml --overwrite \\
        OUTPUT_DIR projects/FastAttr/logs/synthetic_figure

The trainer is the most derived ``DefaultTrainer`` subclass that ``train_net.py`` imports (else
``DefaultTrainer``), so
each run is exactly what ``python projects/<Name>/train_net.py <arguments>`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = """
import importlib, inspect, json, sys
from fastreid.engine import DefaultTrainer, default_argument_parser
from fastreid.engine.cli import main
module = importlib.import_module(f"projects.{sys.argv[1]}.train_net")
found = [v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, DefaultTrainer)]
trainer = next(
    (t for t in found if not any(o is not t and issubclass(o, t) for o in found)), DefaultTrainer
)
args = default_argument_parser().parse_args(sys.argv[2:])
results = main(args, trainer)
flat = {k: float(v) for k, v in results.items() if not isinstance(v, dict)}
print("RESULTS " + json.dumps(flat))
"""


def run_once(project: str, train_args: List[str]) -> Dict[str, Any]:
    """One training run in a fresh process; its flat results dict."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, project, *train_args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULTS ")]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
        raise SystemExit(f"error: the run of projects/{project}/train_net.py failed (above)")
    return json.loads(lines[-1][len("RESULTS ") :])


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", required=True, help="folder under projects/, e.g. FastAttr")
    parser.add_argument("--name", required=True, help="results/<name>.json in the project")
    parser.add_argument("--runs", type=int, default=2, help="runs of the same command")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- train_net.py arguments")
    args = parser.parse_args(argv)
    folder = os.path.join(REPO, "projects", args.project)
    if not os.path.isfile(os.path.join(folder, "train_net.py")):
        parser.error(f"projects/{args.project}/train_net.py does not exist")
    train_args = [a for a in args.train_args if a != "--"]
    runs = []
    for _ in range(args.runs):
        runs.append(run_once(args.project, train_args))
        print(runs[-1])
    result = {
        "command": f"python projects/{args.project}/train_net.py " + " ".join(train_args),
        "made_by": "python tools/record_results.py " + " ".join(argv or sys.argv[1:]),
        "runs": runs,
        "runs_agree": all(r == runs[0] for r in runs),
    }
    path = os.path.join(folder, "results", f"{args.name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
