#!/usr/bin/env python
"""Re-measure a README figure of FastAttr and store it: runs ``train_net.py`` with the given
arguments ``--runs`` times, each in its own process, and writes the results of every run, the
command and whether the runs agree to ``results/<name>.json``.

    python projects/FastAttr/readme_figures.py --name synthetic_nonzero_mean -- \\
        --config-file projects/FastAttr/configs/synthetic.yml --overwrite \\
        OUTPUT_DIR projects/FastAttr/logs/synthetic_figure
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

_CHILD = """
import json, sys
from fastreid.engine import default_argument_parser
from fastreid.engine.cli import main
from projects.FastAttr.fastattr import AttrTrainer
args = default_argument_parser().parse_args(sys.argv[1:])
results = main(args, AttrTrainer)
print("RESULTS " + json.dumps({k: float(v) for k, v in results.items()}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="results/<name>.json")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- train_net.py arguments")
    args = parser.parse_args()
    train_args = [a for a in args.train_args if a != "--"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, *train_args],
            env=env, cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULTS ")]
        if out.returncode != 0 or not lines:
            sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
            return 1
        runs.append(json.loads(lines[-1][len("RESULTS ") :]))
        print(runs[-1])
    result = {
        "command": "python projects/FastAttr/train_net.py " + " ".join(train_args),
        "made_by": "python projects/FastAttr/readme_figures.py " + " ".join(sys.argv[1:]),
        "runs": runs,
        "runs_agree": all(r == runs[0] for r in runs),
    }
    path = os.path.join(HERE, "results", f"{args.name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
