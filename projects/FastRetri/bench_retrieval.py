#!/usr/bin/env python
"""Time and peak memory of RetriEvaluator's metrics at Stanford Online Products scale.

SOP's test split is 60 502 images of 11 316 products searched against itself with
TEST.RECALLS [1, 10, 100, 1000] plus MAP@R. Features are random class centres plus noise.
Each backend runs in a fresh subprocess so its peak RSS is its own; the table also shows what
the full 60k x 60k float32 similarity matrix alone would take.

    python projects/FastRetri/bench_retrieval.py                 # SOP scale, 2048-d
    python projects/FastRetri/bench_retrieval.py --num 5000 --dim 128 --output /tmp/r.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from tabulate import tabulate


def _features(num: int, dim: int, num_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num)
    centres = rng.standard_normal((num_classes, dim), dtype=np.float32)
    feats = centres[labels] + 2.0 * rng.standard_normal((num, dim), dtype=np.float32)
    return torch.from_numpy(feats), torch.from_numpy(labels)


def _run_one(backend: str, num: int, dim: int, num_classes: int, chunk: int) -> dict:
    from projects.FastRetri.fastretri.metrics import retrieval_metrics

    feats, labels = _features(num, dim, num_classes)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    metrics, _ = retrieval_metrics(
        feats, labels, recalls=(1, 10, 100, 1000), chunk_size=chunk, backend=backend
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "backend": backend,
        "seconds": seconds,
        "peak_rss_mib": peak / 1024,
        "rss_before_mib": before / 1024,
        **metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num", type=int, default=60502)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=11316)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--backends", nargs="+", default=["faiss", "torch"])
    parser.add_argument("--output", default="", help="write the rows as JSON here")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_run_one(args.one, args.num, args.dim, args.classes, args.chunk)))
        return
    rows = []
    for backend in args.backends:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                backend,
                "--num",
                str(args.num),
                "--dim",
                str(args.dim),
                "--classes",
                str(args.classes),
                "--chunk",
                str(args.chunk),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    full_matrix_mib = args.num * args.num * 4 / 2**20
    print(
        f"{args.num} x {args.num} self-retrieval, {args.dim}-d, chunk {args.chunk}; "
        f"features {args.num * args.dim * 4 / 2**20:.0f} MiB, full similarity matrix would be "
        f"{full_matrix_mib:.0f} MiB"
    )
    print(
        tabulate(
            [
                [
                    r["backend"],
                    f"{r['seconds']:.1f}",
                    f"{r['peak_rss_mib']:.0f}",
                    f"{r['rss_before_mib']:.0f}",
                    f"{r['Recall@1']:.2f}",
                    f"{r['MAP@R']:.2f}",
                ]
                for r in rows
            ],
            headers=[
                "backend",
                "seconds",
                "peak RSS (MiB)",
                "RSS before (MiB)",
                "Recall@1",
                "MAP@R",
            ],
            tablefmt="pipe",
        )
    )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(
                {"num": args.num, "dim": args.dim, "chunk": args.chunk, "rows": rows}, f, indent=1
            )


if __name__ == "__main__":
    main()
