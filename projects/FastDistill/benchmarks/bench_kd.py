#!/usr/bin/env python
"""Does distillation help? Teacher, student alone, Distiller and DistillerOverhaul on the
synthetic set, on the CPU, at the same epochs and seeds.

    python projects/FastDistill/benchmarks/bench_kd.py            # the README's figures
    python projects/FastDistill/benchmarks/bench_kd.py --seeds 0 1 2 --reuse   # add a seed
    python projects/FastDistill/benchmarks/bench_kd.py --reuse --kd-archs Distiller \
        --tag teacher-train --kd-opts KD.TEACHER_MODE train            # an ablation

1. trains the teacher (FastDistill ResNet-34 by default) once;
2. trains the ResNet-18 student alone, with ``Distiller`` and with ``DistillerOverhaul``,
   for each seed (the same seeds, epochs and recipe for the three);
3. prints Rank-1 / mAP / mINP as mean +- std over the seeds, the step time and the teacher's
   share of it, and writes everything to a JSON file.

Each run is a separate process with one torch thread (on a busy machine several single-
threaded processes go much further than one multi-threaded one); ``--jobs`` of them run at
once. The recipe is ``configs/Synthetic/Base-synthetic.yml`` with the overrides printed in the
table header.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
CONFIGS = os.path.join(PROJECT, "configs", "Synthetic")
METRICS = ("Rank-1", "mAP", "mINP")


# -- one training run (in its own process) --------------------------------------------------
def run_one(spec: Dict[str, Any]) -> Dict[str, Any]:
    import torch

    torch.set_num_threads(int(spec["threads"]))
    import projects.FastDistill.fastdistill  # noqa: F401 - registers the distill backbone
    from fastreid.config import get_cfg
    from fastreid.data.synthetic import ensure_synthetic_dataset
    from fastreid.engine import DefaultTrainer, default_setup

    ensure_synthetic_dataset()
    cfg = get_cfg()
    cfg.merge_from_file(spec["config"])
    cfg.merge_from_list(spec["opts"])
    cfg.freeze()
    default_setup(cfg, None)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)

    # Time every training step, and the teachers' share inside it.
    timing = {"step": 0.0, "teacher": 0.0, "steps": 0}
    inner_step = trainer.run_step

    def timed_step() -> None:
        start = time.perf_counter()
        inner_step()
        timing["step"] += time.perf_counter() - start
        timing["steps"] += 1

    trainer.run_step = timed_step  # type: ignore[method-assign]
    model = trainer.model
    for name in ("teacher_logits", "teacher_outputs"):
        if hasattr(model, name):
            inner = getattr(model, name)

            def timed_teacher(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
                start = time.perf_counter()
                out = _inner(*args, **kwargs)
                timing["teacher"] += time.perf_counter() - start
                return out

            setattr(model, name, timed_teacher)

    start = time.perf_counter()
    results = trainer.train()
    wall = time.perf_counter() - start
    return {
        "name": spec["name"],
        "seed": spec["seed"],
        "spec": spec,
        "metrics": {k: float(results[k]) for k in METRICS},
        "train_seconds": wall,
        "step_seconds": timing["step"] / max(1, timing["steps"]),
        "teacher_share": timing["teacher"] / timing["step"] if timing["step"] else 0.0,
        "steps": timing["steps"],
    }


# -- orchestration ------------------------------------------------------------------------------
def run_specs(args: argparse.Namespace) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The teacher's run and every student run (name, seed, config, overrides) of ``args``."""
    h, w = args.size

    def opts(epochs: int, seed: int, out: str) -> List[str]:
        return [
            "INPUT.SIZE_TRAIN", f"[{h}, {w}]",
            "INPUT.SIZE_TEST", f"[{h}, {w}]",
            "SOLVER.MAX_EPOCH", str(epochs),
            "SOLVER.DELAY_EPOCHS", str(epochs // 2),
            "SOLVER.WARMUP_ITERS", str(args.warmup_iters),
            "SOLVER.CHECKPOINT_PERIOD", str(epochs),
            "TEST.EVAL_PERIOD", str(epochs),
            "DATALOADER.NUM_WORKERS", "1",
            "SEED", str(seed),
            "OUTPUT_DIR", out,
        ]  # fmt: skip

    teacher_dir = os.path.join(args.output, f"teacher_r{args.teacher_depth[:-1]}")
    teacher = {
        "name": f"teacher R{args.teacher_depth[:-1]}",
        "seed": args.seeds[0],
        "threads": args.threads,
        "config": os.path.join(CONFIGS, "sbs_r34.yml"),
        "opts": opts(args.teacher_epochs, args.seeds[0], teacher_dir)
        + ["MODEL.BACKBONE.DEPTH", args.teacher_depth],
    }
    kd = [
        "KD.MODEL_CONFIG", os.path.join(teacher_dir, "config.yaml"),
        "KD.MODEL_WEIGHTS", os.path.join(teacher_dir, "model_final.pth"),
    ] + list(args.kd_opts)  # fmt: skip
    tag = f" [{args.tag}]" if args.tag else ""
    students = []
    for seed in args.seeds:
        runs = [("student R18", "Baseline", [])] + [
            (f"R18 + {arch}{tag}", arch, kd) for arch in args.kd_archs
        ]
        for name, arch, extra in runs:
            suffix = f"_{args.tag}" if args.tag and extra else ""
            out = os.path.join(args.output, f"{arch}_seed{seed}{suffix}")
            students.append(
                {
                    "name": name,
                    "seed": seed,
                    "threads": args.threads,
                    "config": os.path.join(CONFIGS, "sbs_r18.yml"),
                    "opts": opts(args.student_epochs, seed, out)
                    + ["MODEL.META_ARCHITECTURE", arch]
                    + extra,
                }
            )
    return teacher, students


def _launch(spec: Dict[str, Any], log_dir: str, reuse: bool = False) -> Dict[str, Any]:
    out = os.path.join(log_dir, f"{spec['name']}_seed{spec['seed']}.result.json")
    if reuse and os.path.isfile(out):
        with open(out) as f:
            done = json.load(f)
        if done.get("spec", spec) != spec:
            raise SystemExit(
                f"error: {out} was measured with other options; delete it or drop --reuse."
            )
        return done
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    with open(os.path.join(log_dir, f"{spec['name']}_seed{spec['seed']}.log"), "w") as log:
        proc = subprocess.run(
            [sys.executable, __file__, "--run-one", json.dumps(spec), "--result", out],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"run {spec['name']} seed {spec['seed']} failed; see {log.name}")
    with open(out) as f:
        return json.load(f)


def _mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--teacher-depth", default="34x")
    parser.add_argument("--teacher-epochs", type=int, default=24)
    parser.add_argument("--student-epochs", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=2, default=[128, 64], metavar=("H", "W"))
    parser.add_argument("--warmup-iters", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument(
        "--kd-opts", nargs="*", default=[], help="extra KEY VALUE overrides for the KD runs"
    )
    parser.add_argument(
        "--kd-archs",
        nargs="+",
        default=["Distiller", "DistillerOverhaul"],
        choices=["Distiller", "DistillerOverhaul"],
        help="the KD students to train",
    )
    parser.add_argument(
        "--tag",
        default="",
        help="a name for a variant of the KD runs (with --kd-opts and --reuse: an ablation "
        "beside the finished runs)",
    )
    parser.add_argument("--output", default="logs/bench_fastdistill")
    parser.add_argument(
        "--json", default=os.path.join(HERE, "results", "bench_kd.json"), help="result file"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="take the runs already finished in --output (same options) instead of training "
        "them again, e.g. to add a seed",
    )
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_one:
        result = run_one(json.loads(args.run_one))
        with open(args.result, "w") as f:
            json.dump(result, f)
        return

    os.makedirs(args.output, exist_ok=True)
    h, w = args.size
    teacher, students = run_specs(args)

    # The teacher and the students without KD need nothing else: they start together; the
    # KD students wait for the teacher.
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        teacher_run = pool.submit(_launch, teacher, args.output, args.reuse)

        def after_teacher(spec: Dict[str, Any]) -> Dict[str, Any]:
            if "KD.MODEL_CONFIG" in spec["opts"]:
                teacher_run.result()
            result = _launch(spec, args.output, args.reuse)
            print(f"{spec['name']} seed {spec['seed']}: {result['metrics']}", flush=True)
            return result

        ordered = sorted(students, key=lambda s: "KD.MODEL_CONFIG" in s["opts"])
        futures = [pool.submit(after_teacher, spec) for spec in ordered]
        runs = [teacher_run.result()] + [f.result() for f in futures]
    total = time.perf_counter() - start

    from tabulate import tabulate

    rows = []
    for name in dict.fromkeys(r["name"] for r in runs):
        group = [r for r in runs if r["name"] == name]
        rows.append(
            [name, len(group)]
            + [_mean_std([r["metrics"][m] for r in group]) for m in METRICS]
            + [
                f"{statistics.mean(r['step_seconds'] for r in group):.2f}",
                f"{100 * statistics.mean(r['teacher_share'] for r in group):.0f}%",
            ]
        )
    headers = ["model", "seeds", *METRICS, "s/step", "teacher share of step"]
    print(
        f"\nSynthetic set, {h}x{w}, teacher {args.teacher_epochs} epochs, students "
        f"{args.student_epochs} epochs, {args.threads} thread(s) per run, {args.jobs} runs at "
        f"once; KD extra opts: {args.kd_opts or 'none'}; total {total / 60:.1f} min"
    )
    print(tabulate(rows, headers=headers, tablefmt="github"))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"args": vars(args), "runs": runs, "total_seconds": total}, f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
