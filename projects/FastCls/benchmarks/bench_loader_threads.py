#!/usr/bin/env python
"""FastCls step time with and without DATALOADER.SPLIT_CORES (the main process leaving the
loader workers their cores), OMP_NUM_THREADS unset as a user would run it.

    python projects/FastCls/benchmarks/bench_loader_threads.py --root /usr/share/datasets

Each setting runs in its own process (torch's thread count is per process): the recipe
``configs/fashion_mnist_small_resnet.yml`` with 1 loader worker, ``--warmup`` steps, then
``--steps`` timed steps; the settings alternate for ``--repeats`` rounds. Prints a table and
writes ``results/bench_loader_threads.json`` (median, min and max seconds per step).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PROJECT))
CONFIG = os.path.join(PROJECT, "configs", "fashion_mnist_small_resnet.yml")


def _one_run(root: str, split: bool, warmup: int, steps: int) -> dict:
    import torch

    from fastreid.config import get_cfg
    from fastreid.utils.env import seed_all_rng
    from fastreid.utils.events import EventStorage
    from projects.FastCls.fastcls import ClsTrainer

    cfg = get_cfg()
    ClsTrainer.add_config(cfg)
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(
        ["DATASETS.ROOT", root, "DATALOADER.NUM_WORKERS", "1", "OUTPUT_DIR", "",
         "DATALOADER.SPLIT_CORES", str(split)]
    )  # fmt: skip
    seed_all_rng(0)
    trainer = ClsTrainer(cfg)
    inner = trainer._trainer
    times = []
    with EventStorage(0) as inner.storage:
        for i in range(warmup + steps):
            start = time.perf_counter()
            inner.iter = i
            inner.run_step()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return {"threads": torch.get_num_threads(), "step_s": times}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/usr/share/datasets", help="holds fashion-mnist/")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "bench_loader_threads.json"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one_run(args.root, args.child == "on", args.warmup, args.steps)))
        return 0
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    runs = {"on": [], "off": []}
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--root", args.root,
                   "--warmup", str(args.warmup), "--steps", str(args.steps)]  # fmt: skip
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = {}
    print(f"{'SPLIT_CORES':<12} {'main threads':>12} {'median s/step':>14} {'min':>8} {'max':>8}")
    for mode in ("off", "on"):
        steps = [t for run in runs[mode] for t in run["step_s"]]
        rows[mode] = {
            "main_threads": runs[mode][0]["threads"],
            "median_s_per_step": statistics.median(steps),
            "min_s_per_step": min(steps),
            "max_s_per_step": max(steps),
            "per_run_median": [statistics.median(r["step_s"]) for r in runs[mode]],
        }
        r = rows[mode]
        print(
            f"{'True' if mode == 'on' else 'False':<12} {r['main_threads']:>12} "
            f"{r['median_s_per_step']:>14.3f} {r['min_s_per_step']:>8.3f} {r['max_s_per_step']:>8.3f}"
        )
    result = {
        "command": "python projects/FastCls/benchmarks/bench_loader_threads.py "
        + " ".join(sys.argv[1:]),
        "config": os.path.relpath(CONFIG, REPO),
        "num_workers": 1,
        "warmup": args.warmup,
        "steps": args.steps,
        "repeats": args.repeats,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "machine": platform.machine(),
        "split_cores_false": rows["off"],
        "split_cores_true": rows["on"],
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
