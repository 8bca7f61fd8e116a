#!/usr/bin/env python
"""Training throughput and peak memory of the fastreid training step.

Runs the real step (``SimpleTrainer`` / ``AMPTrainer``: forward, losses, backward,
optimizer) of BoT (Base-bagtricks) models on in-memory batches, so the figures measure the
model and the step, not the data loader (see bench_data.py for that).

CPU rows: ResNet-50 and ResNet-18 at 256x128, batch 64, in fp32, bf16 autocast,
channels_last and channels_last + bf16. CUDA rows (when a GPU exists): ``CUDA_MODES``, from
the plain fp32 step to channels_last + bf16 + fused optimizer + CUDA graph.

Each row runs in its own process so its peak memory is its own. Prints a table and writes
JSON (default ``benchmarks/results/bench_train.json``).

    python benchmarks/bench_train.py                 # full (slow on a small CPU)
    python benchmarks/bench_train.py --iters 2       # fewer timed iterations
    python benchmarks/bench_train.py --quick         # tiny smoke run (seconds)
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(ROOT, "benchmarks", "results", "bench_train.json")

# CUDA rows: the step as FastReID runs it (torch's default optimizer kernels, NCHW), then each
# speed-up on its own and together (see run_row for the options).
CUDA_MODES = (
    "fp32",
    "amp_fp16",
    "amp_bf16",
    "fp32+fused",
    "amp_bf16+fused",
    "channels_last+amp_bf16",
    "channels_last+amp_bf16+fused",
    "channels_last+amp_fp16+fused",
    "fp32+fused+graph",  # each graph mode has its eager twin above (gpu_check compares them)
    "amp_bf16+fused+graph",
    "channels_last+amp_bf16+fused+graph",
)


def _rows(
    quick: bool, cuda: bool, depths: List[str], compile_rows: bool = False
) -> List[Dict[str, Any]]:
    if quick:
        base = dict(depth="18x", height=64, width=32, batch=8, device="cpu")
        return [dict(base, mode="fp32"), dict(base, mode="bf16")]
    rows = []
    for depth in depths:
        base = dict(depth=depth, height=256, width=128, batch=64)
        cpu_modes = ["fp32", "bf16", "channels_last", "channels_last+bf16"]
        if compile_rows:
            cpu_modes += ["compile+channels_last+bf16"]
        for mode in cpu_modes:
            rows.append(dict(base, device="cpu", mode=mode))
        if cuda:
            modes = CUDA_MODES + (("compile+amp_bf16+fused",) if compile_rows else ())
            for mode in modes:
                rows.append(dict(base, device="cuda", mode=mode))
    return rows


def _peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def run_row(row: Dict[str, Any], warmup: int, iters: int) -> Dict[str, Any]:
    """Time ``iters`` training steps after ``warmup`` steps for one configuration.

    ``row["mode"]`` joins options with ``+``: ``fp32``, ``bf16`` / ``amp_bf16`` (bf16
    autocast), ``fp16`` / ``amp_fp16`` (fp16 autocast + GradScaler), ``channels_last``
    (MODEL.CHANNELS_LAST), ``fused`` (SOLVER.FUSED: fused optimizer kernels on CUDA; without
    it torch's default kernels), ``graph`` (SOLVER.CUDA_GRAPH), ``compile`` (MODEL.COMPILE).
    CUDA rows run with cuDNN benchmark mode, as the BoT recipes' CUDNN_BENCHMARK asks.
    """
    import torch

    from fastreid.config import get_cfg
    from fastreid.engine import AMPTrainer, CallbackHook, SimpleTrainer
    from fastreid.modeling import build_model
    from fastreid.solver import build_optimizer

    device, mode = row["device"], row["mode"]
    options = set(mode.split("+"))
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", "Base-bagtricks.yml"))
    cfg.MODEL.DEVICE = device
    cfg.MODEL.BACKBONE.DEPTH = row["depth"]
    cfg.MODEL.BACKBONE.FEAT_DIM = 2048 if row["depth"] in ("50x", "101x") else 512
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES = 751
    cfg.MODEL.CHANNELS_LAST = "channels_last" in options
    cfg.SOLVER.FUSED = "fused" in options
    cfg.SOLVER.CUDA_GRAPH = "graph" in options
    cfg.INPUT.SIZE_TRAIN = [row["height"], row["width"]]
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)

    batch = row["batch"]
    ids_per_batch = max(1, batch // 4)
    images = torch.rand(batch, 3, row["height"], row["width"]) * 255
    if cfg.MODEL.CHANNELS_LAST:
        images = images.contiguous(memory_format=torch.channels_last)
    data = {
        "images": images.to(device),
        "targets": torch.arange(ids_per_batch).repeat_interleave(4)[:batch].to(device),
        "camids": torch.zeros(batch, dtype=torch.long, device=device),
    }
    if "compile" in options:
        from fastreid.modeling.meta_arch.build import compile_backbone

        compile_backbone(model)  # what MODEL.COMPILE does

    loader = itertools.repeat(data)
    common: Dict[str, Any] = dict(log_period=20, cuda_graph=cfg.SOLVER.CUDA_GRAPH)
    if options & {"bf16", "amp_bf16"}:
        trainer = AMPTrainer(
            model, loader, optimizer, device_type=device, dtype=torch.bfloat16, **common
        )
    elif options & {"fp16", "amp_fp16"}:
        trainer = AMPTrainer(
            model, loader, optimizer, device_type=device, dtype=torch.float16, **common
        )
    else:
        trainer = SimpleTrainer(model, loader, optimizer, **common)
    if cfg.SOLVER.CUDA_GRAPH:
        if trainer.graph_step is None:
            raise RuntimeError(f"mode {mode}: the CUDA graph was refused (see the warning above)")
        # Its eager warm-up steps and the capture stay out of the timed steps.
        warmup = max(warmup, trainer.graph_step.WARMUP_STEPS + 2)

    stamps: List[float] = []

    def stamp(_trainer: Any) -> None:
        if device == "cuda":
            torch.cuda.synchronize()  # measurement only; the step itself never syncs
        stamps.append(time.perf_counter())

    trainer.register_hooks([CallbackHook(before_train=stamp, after_step=stamp)])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train(0, 1, warmup + iters)
    step_times = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]
    seconds = sum(step_times) / len(step_times)
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    graph = trainer.graph_step
    return dict(
        row,
        first_loss=round(losses[0], 5),
        last_loss=round(losses[-1], 5),
        graph_captures=graph.captures if graph is not None else 0,
        graph_disabled=graph.disabled if graph is not None else None,
        iters=iters,
        warmup=warmup,
        sec_per_iter=round(seconds, 4),
        images_per_sec=round(batch / seconds, 2),
        peak_memory_mb=round(_peak_memory_mb(device), 1),
        memory_kind="cuda max_memory_allocated" if device == "cuda" else "process peak RSS",
    )


def _run_in_subprocess(
    row: Dict[str, Any], warmup: int, iters: int, threads: int
) -> Dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--row",
        json.dumps(row),
        "--warmup",
        str(warmup),
        "--iters",
        str(iters),
        "--threads",
        str(threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return dict(row, error=(out.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(results: List[Dict[str, Any]]) -> str:
    from tabulate import tabulate

    rows = []
    for r in results:
        model = {"50x": "BoT R50", "18x": "BoT R18"}.get(r["depth"], r["depth"])
        size = f"{r['height']}x{r['width']}"
        if "error" in r:
            rows.append(
                (model, size, r["batch"], r["device"], r["mode"], "-", "-", "-", r["error"][:60])
            )
        else:
            rows.append(
                (
                    model,
                    size,
                    r["batch"],
                    r["device"],
                    r["mode"],
                    r["sec_per_iter"],
                    r["images_per_sec"],
                    r["peak_memory_mb"],
                    "",
                )
            )
    return tabulate(
        rows,
        headers=["model", "input", "batch", "device", "mode", "s/iter", "img/s", "peak MB", "note"],
    )


def main(argv: List[str] | None = None) -> List[Dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny R18 64x32 batch 8 smoke run, in-process"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps first (default 2; quick 1)"
    )
    parser.add_argument("--iters", type=int, default=None, help="timed steps (default 5; quick 2)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument(
        "--output",
        default=None,
        help=f"JSON file (default {os.path.relpath(DEFAULT_OUTPUT, ROOT)}; quick: none)",
    )
    parser.add_argument("--depths", default="50x,18x", help="ResNet depths, comma-separated")
    parser.add_argument(
        "--compile", action="store_true", help="add a CPU row with MODEL.COMPILE (slow to build)"
    )
    # Internal: run one row and print its result as JSON.
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    iters = args.iters if args.iters is not None else (2 if args.quick else 5)
    if iters < 1:
        parser.error("--iters must be at least 1")

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.row is not None:
        print(json.dumps(run_row(json.loads(args.row), warmup, iters)))
        return []

    cuda = torch.cuda.is_available()
    results = []
    for row in _rows(args.quick, cuda, args.depths.split(","), args.compile):
        print(f"running {row} ...", file=sys.stderr, flush=True)
        if args.quick:
            results.append(run_row(row, warmup, iters))
        else:
            results.append(_run_in_subprocess(row, warmup, iters, args.threads))
    print(_table(results))

    output = args.output if args.output is not None else (None if args.quick else DEFAULT_OUTPUT)
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        meta = dict(
            date=datetime.date.today().isoformat(),
            command="python benchmarks/bench_train.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            torch=torch.__version__,
            cpu_threads=torch.get_num_threads(),
            cpu_count=os.cpu_count(),
            platform=platform.platform(),
            gpu=torch.cuda.get_device_name(0) if cuda else None,
        )
        with open(output, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        print(f"wrote {output}")
    return results


if __name__ == "__main__":
    main()
