#!/usr/bin/env python
"""PartialFC at scale: peak memory and step time by class count and sample rate.

Each case (classes x sample rate) runs in its own subprocess. One step = forward (cosine
logits of the sampled centres, CosFace margin, sharded softmax) + backward + the centres' SGD
step + write-back, on one process. Memory on the CPU is the process's peak resident set
during the timed steps (``VmHWM`` after a reset), and the same minus the resident set before
them (the centres and their momentum, ``import torch``); on CUDA it is
``torch.cuda.max_memory_allocated``.

    python projects/FastFace/benchmarks/bench_partial_fc.py                 # 100k and 1M, D 512
    python projects/FastFace/benchmarks/bench_partial_fc.py --classes 1000000 --dim 128
    python projects/FastFace/benchmarks/bench_partial_fc.py --quick         # a smoke run

Prints a table and writes ``projects/FastFace/benchmarks/results/partial_fc.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_one(case: Dict[str, Any]) -> Dict[str, Any]:
    import torch

    from projects.FastFace.fastface.partial_fc import PartialFC

    torch.manual_seed(0)
    device = torch.device(case["device"])
    pfc = PartialFC(
        case["classes"], case["dim"], sample_rate=case["rate"], scale=64, margin=0.4,
        device=device,
    )  # fmt: skip
    opt = pfc.build_optimizer(lr=0.1, momentum=0.9, weight_decay=5e-4)
    feats = torch.randn(case["batch"], case["dim"], device=device)
    labels = torch.randint(0, case["classes"], (case["batch"],), device=device)

    def step() -> float:
        x = feats.clone().requires_grad_(True)
        loss = pfc(x, labels)
        loss.backward()
        opt.step()
        pfc.update()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base_kb = _status_kb("VmRSS")
        resettable = _reset_peak()
    times: List[float] = []
    for _ in range(case["steps"]):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    out = dict(case, step_ms=1000 * statistics.median(times), num_sample=pfc.num_sample)
    if device.type == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_above_state_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_kb = _status_kb("VmHWM")
        out["peak_mb"] = peak_kb / 1024
        out["peak_above_state_mb"] = (peak_kb - base_kb) / 1024 if resettable else None
    return out


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 0.3, 0.1])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="1k and 10k classes, 2 steps")
    parser.add_argument("--out", default=os.path.join(RESULTS, "partial_fc.json"))
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        print(json.dumps(run_one(json.loads(args.run_one))))
        return
    if args.quick:
        args.classes, args.steps, args.batch = [1000, 10000], 2, 32
    rows = []
    for classes in args.classes:
        for rate in args.rates:
            case = dict(classes=classes, rate=rate, dim=args.dim, batch=args.batch,
                        steps=args.steps, device=args.device)  # fmt: skip
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--run-one", json.dumps(case)],
                capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                raise SystemExit(f"case {case} failed:\n{proc.stderr[-2000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            above = row["peak_above_state_mb"]
            print(
                f"classes {classes:>9,d}  rate {rate:<4}  sampled {row['num_sample']:>9,d}  "
                f"step {row['step_ms']:8.1f} ms  peak {row['peak_mb']:8.0f} MB  "
                f"above state {above if above is None else round(above):>6} MB",
                flush=True,
            )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"device": args.device, "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
