"""End to end on one GPU: a Market-size synthetic set, BoT R50 from scratch, 24 epochs.

1. Makes a synthetic set with Market-1501's sizes (751 train ids, 12 936 train images, 3 368
   query, 15 913 gallery incl. distractors, 256x128 JPEG, 6 cameras) from the renderer of
   ``fastreid.data.synthetic``, on all CPU cores (one process per core, one seed per image).
2. Trains the BoT R50 recipe (configs/Market1501/bagtricks_R50.yml, no pretrained weights)
   shortened to 24 epochs (LR steps and warm-up scaled by 24/120), AMP bf16, through the
   device data path (``DATALOADER.CACHE.ENABLED``), as one ``tools/train_net.py`` command
   timed from its start to its finished evaluation.
3. If the time budget allows, trains the same with the CPU data path for the accuracy
   comparison (same seed, same everything else).

    python benchmarks/gpu_e2e.py                      # on the GPU machine (one call)
    python benchmarks/gpu_e2e.py --smoke              # tiny sizes on the CPU (CI)
    python benchmarks/gpu_e2e.py --paths device       # skip the CPU data path run
    python benchmarks/gpu_e2e.py --opts SOLVER.AMP.DTYPE float16   # more config overrides

Prints a table and writes JSON (``--output``, default benchmarks/results/gpu_e2e.json, or
gpu_e2e_smoke.json with ``--smoke``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
RESULTS = os.path.join(REPO, "benchmarks", "results")
RECIPE = os.path.join(REPO, "configs", "Market1501", "bagtricks_R50.yml")
MARKET_FOLDER = "Market-1501-v15.09.15"
NUM_CAMS = 6

# (train ids, train images, test ids, query images, gallery images incl. distractors,
#  distractors, height, width)
MARKET = dict(train_ids=751, train=12936, test_ids=750, query=3368, gallery=15913, distractors=2793)
SMOKE = dict(train_ids=8, train=64, test_ids=6, query=12, gallery=40, distractors=6)
FULL_EPOCHS, RECIPE_EPOCHS = 24, 120


# -- the data set ---------------------------------------------------------------------------
def _split(total: int, parts: int, rng) -> List[int]:
    """``total`` as ``parts`` near-equal positive counts, the larger ones at random places."""
    base, extra = divmod(total, parts)
    counts = [base] * parts
    for i in rng.choice(parts, extra, replace=False):
        counts[int(i)] += 1
    return counts


def plan_images(sizes: Dict[str, int], seed: int) -> List[Tuple[int, int, str]]:
    """(pid, camera, folder) of every image, with exactly the requested counts.

    Test ids appear in 2-6 cameras with one query image per (id, camera) and at least one
    gallery image in each of their cameras, so every query has a match in another camera.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    rows: List[Tuple[int, int, str]] = []
    n_train, n_test = sizes["train_ids"], sizes["test_ids"]
    for pid, count in zip(range(1, n_train + 1), _split(sizes["train"], n_train, rng)):
        cams = rng.choice(NUM_CAMS, int(rng.integers(2, min(count, NUM_CAMS) + 1)), replace=False)
        for k in range(count):
            rows.append((pid, int(cams[k % len(cams)]), "bounding_box_train"))
    query_cams = _split(sizes["query"], n_test, rng)
    own_gallery = sizes["gallery"] - sizes["distractors"]
    gallery_counts = _split(own_gallery, n_test, rng)
    for k, pid in enumerate(range(n_train + 1, n_train + n_test + 1)):
        n_cams = min(max(query_cams[k], 2), NUM_CAMS)
        cams = [int(c) for c in rng.choice(NUM_CAMS, n_cams, replace=False)]
        for cam in cams[: query_cams[k]]:
            rows.append((pid, cam, "query"))
        for j in range(max(gallery_counts[k], n_cams)):
            rows.append((pid, cams[j % n_cams], "bounding_box_test"))
    for _ in range(sizes["distractors"]):
        rows.append((0, int(rng.integers(NUM_CAMS)), "bounding_box_test"))
    return rows


_WORLD: Dict[str, object] = {}


def _init_worker(seed: int, num_people: int, height: int, width: int) -> None:
    import numpy as np

    from fastreid.data.synthetic import reid as synthetic

    rng = np.random.default_rng(seed)
    _WORLD["people"] = [synthetic.random_identity(rng) for _ in range(num_people + 1)]
    _WORLD["cameras"] = [synthetic.random_camera(rng, c, height, width) for c in range(NUM_CAMS)]
    _WORLD["size"] = (height, width)
    _WORLD["seed"] = seed


def _render(task: Tuple[int, int, int, str, str]) -> None:
    import numpy as np

    from fastreid.data.synthetic import reid as synthetic

    index, pid, cam, folder, root = task
    rng = np.random.default_rng([int(_WORLD["seed"]), index])
    height, width = _WORLD["size"]
    camera = _WORLD["cameras"][cam]
    # Distractors are one-off people; the others keep their identity's appearance.
    person = synthetic.random_identity(rng) if pid == 0 else _WORLD["people"][pid]
    image = synthetic.render_person(rng, person, camera, height, width)
    name = f"{pid:04d}_c{cam + 1}s1_{index:06d}_00.jpg"
    synthetic.capture(rng, image, camera).save(
        os.path.join(root, folder, name), quality=camera.quality
    )


def make_market_like(
    root: str, sizes: Dict[str, int], height: int, width: int, seed: int, workers: int
) -> str:
    """Write ``<root>/Market-1501-v15.09.15`` (Market1501 layout); returns its path."""
    from fastreid.utils.file_io import atomic_folder

    final = os.path.join(root, MARKET_FOLDER)
    with atomic_folder(final, prefix=".market-like-") as work:
        for folder in ("bounding_box_train", "query", "bounding_box_test"):
            os.makedirs(os.path.join(work, folder))
        rows = plan_images(sizes, seed)
        tasks = [(i, pid, cam, folder, work) for i, (pid, cam, folder) in enumerate(rows)]
        num_people = sizes["train_ids"] + sizes["test_ids"]
        init = (seed, num_people, height, width)
        if workers <= 1:
            _init_worker(*init)
            for task in tasks:
                _render(task)
        else:
            with multiprocessing.get_context("fork").Pool(workers, _init_worker, init) as pool:
                for _ in pool.imap_unordered(_render, tasks, chunksize=64):
                    pass
    return final


# -- the training runs ----------------------------------------------------------------------
def recipe_opts(root: str, output_dir: str, epochs: int, smoke: bool, cache: bool) -> List[str]:
    scale = epochs / RECIPE_EPOCHS
    opts = {
        "DATASETS.ROOT": root,
        "DATASETS.NAMES": '("Market1501",)',
        "DATASETS.TESTS": '("Market1501",)',
        "OUTPUT_DIR": output_dir,
        "MODEL.BACKBONE.PRETRAIN": "False",
        "SOLVER.MAX_EPOCH": str(epochs),
        "SOLVER.STEPS": f"[{max(1, round(40 * scale))}, {max(1, round(90 * scale))}]",
        "SOLVER.WARMUP_ITERS": str(max(1, round(2000 * scale))),
        "SOLVER.CHECKPOINT_PERIOD": str(epochs),
        "TEST.EVAL_PERIOD": str(epochs),
        "DATALOADER.CACHE.ENABLED": str(cache),
        "SEED": "0",
    }
    if smoke:  # the CPU: R18, 64x32, small batches, fp32
        opts.update(
            {
                "MODEL.DEVICE": "cpu",
                "MODEL.BACKBONE.DEPTH": "18x",
                "MODEL.BACKBONE.FEAT_DIM": "512",
                "INPUT.SIZE_TRAIN": "[64, 32]",
                "INPUT.SIZE_TEST": "[64, 32]",
                "INPUT.PADDING.SIZE": "4",
                "SOLVER.IMS_PER_BATCH": "16",
                "SOLVER.AMP.ENABLED": "False",
                "TEST.IMS_PER_BATCH": "32",
                "DATALOADER.NUM_WORKERS": "0",
                "DATALOADER.CACHE.DECODE_WORKERS": "2",
                "CUDNN_BENCHMARK": "False",
            }
        )
    else:
        opts.update(
            {
                "SOLVER.AMP.ENABLED": "True",
                "SOLVER.AMP.DTYPE": "bfloat16",
                "DATALOADER.CACHE.DECODE_WORKERS": str(os.cpu_count() or 1),
            }
        )
    return [item for pair in opts.items() for item in pair]


def read_metrics(output_dir: str) -> Dict[str, float]:
    """The last evaluation's numbers from ``metrics.json`` (JSON lines)."""
    found: Dict[str, float] = {}
    path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(path):
        return found
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            for key, value in record.items():
                if any(m in key for m in ("Rank-1", "Rank-5", "mAP", "mINP")):
                    found[key] = round(float(value), 2)
    return found


def train_once(
    path: str, root: str, work: str, epochs: int, smoke: bool, extra: Sequence[str], limit: float
) -> Dict[str, object]:
    output_dir = os.path.join(work, f"run_{path}")
    command = [
        sys.executable,
        os.path.join(REPO, "tools", "train_net.py"),
        "--config-file",
        RECIPE,
        *recipe_opts(root, output_dir, epochs, smoke, cache=path == "device"),
        *extra,
    ]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=max(1.0, limit)
        )
        code, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        code = -1
        log = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        log += f"\n(stopped after {limit:.0f} s)"
    seconds = time.perf_counter() - start
    row: Dict[str, object] = {
        "data_path": path,
        "seconds": round(seconds, 1),
        "exit_code": code,
        **read_metrics(output_dir),
    }
    if code != 0:
        row["log_tail"] = log[-2000:]
    return row


def run(args: argparse.Namespace) -> Dict[str, object]:
    start = time.perf_counter()
    sizes = SMOKE if args.smoke else MARKET
    height, width = (64, 32) if args.smoke else (256, 128)
    epochs = args.epochs or (2 if args.smoke else FULL_EPOCHS)
    workers = args.workers or (2 if args.smoke else os.cpu_count() or 1)
    work = tempfile.mkdtemp(prefix="gpu_e2e-", dir=args.work_dir)
    try:
        root = os.path.join(work, "datasets")
        os.makedirs(root)
        t0 = time.perf_counter()
        make_market_like(root, sizes, height, width, args.seed, workers)
        generation = time.perf_counter() - t0
        rows = []
        for path in args.paths:
            spent = time.perf_counter() - start
            left = args.budget_s - spent
            if rows and rows[0]["exit_code"] == 0:
                needed = float(rows[0]["seconds"]) * (1.5 if path == "cpu" else 1.0)
                if needed > left:
                    rows.append(
                        {
                            "data_path": path,
                            "skipped": f"needs about {needed:.0f} s, {left:.0f} s of the "
                            f"--budget-s {args.budget_s:.0f} left",
                        }
                    )
                    continue
            rows.append(train_once(path, root, work, epochs, args.smoke, args.opts, left))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = None
    result = {
        "benchmark": "gpu_e2e",
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python", "benchmarks/gpu_e2e.py", *sys.argv[1:]]),
        "smoke": args.smoke,
        "machine": {
            "gpu": gpu,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch_version,
        },
        "setup": {
            "recipe": "configs/Market1501/bagtricks_R50.yml"
            + (" (R18, 64x32, batch 16: smoke)" if args.smoke else ""),
            "epochs": epochs,
            "images": {**sizes, "size": f"{height}x{width}"},
            "generation_workers": workers,
            "generation_seconds": round(generation, 1),
            "seconds_are": "tools/train_net.py wall clock: start to finished evaluation",
            "extra_opts": list(args.opts),
        },
        "rows": rows,
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    return result


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (CI)")
    parser.add_argument("--output", default=None, help="JSON result file")
    parser.add_argument(
        "--paths",
        nargs="+",
        default=["device", "cpu"],
        choices=["device", "cpu"],
        help="data paths to train with, in order (default: device cpu)",
    )
    parser.add_argument("--epochs", type=int, default=0, help="default 24 (smoke: 2)")
    parser.add_argument("--workers", type=int, default=0, help="generation processes (all CPUs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=450.0,
        help="skip a later run that would not finish within this many seconds in all",
    )
    parser.add_argument("--work-dir", default=None, help="folder for the set and the runs")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides")
    args = parser.parse_args(argv)
    output = args.output or os.path.join(
        RESULTS, "gpu_e2e_smoke.json" if args.smoke else "gpu_e2e.json"
    )
    result = run(args)
    from tabulate import tabulate

    table = [{k: v for k, v in row.items() if k != "log_tail"} for row in result["rows"]]
    print(tabulate(table, headers="keys", tablefmt="pipe"))
    for row in result["rows"]:
        if row.get("log_tail"):
            print(
                f"--- {row['data_path']} run failed (exit {row['exit_code']}):\n{row['log_tail']}"
            )
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, output)
    print(f"wrote {output}")
    return result


if __name__ == "__main__":
    main()
