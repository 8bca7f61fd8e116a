"""Data pipeline throughput: fastreid's train loader vs a plain PIL + classic torchvision one.

Both pipelines read the same synthetic set (generated into a temporary folder, 128x64 JPEGs as
Market-1501's), sample with the same P x K sampler and apply the same augmentation: BoT
(resize 256x128, flip, pad + crop, random erasing) and SBS (BoT + AutoAugment p=0.1, 384x128).
fastreid decodes with torchvision.io and runs transforms.v2 on uint8 tensors; the baseline
opens images with PIL and runs torchvision.transforms (v1) on PIL images then ToTensor.

    python benchmarks/bench_data.py            # full run (~ a few minutes on 2 cores)
    python benchmarks/bench_data.py --quick    # a few seconds (smoke test)
    python benchmarks/bench_data.py --device-only --device cuda   # device path rows only

The device data path (``DATALOADER.CACHE``: a decoded uint8 cache + batched augmentation on
``--device``, default cuda when available) gets its own rows: cache build time and decode
rate, then batches per second from the cache (synchronised on the device before the clock
stops), next to fastreid's CPU loader with the most workers of the run.

Prints a table and writes JSON (``--output``, default benchmarks/results/bench_data.json).
Both run with one intra-op thread in the main process (what loader workers use), so the
0-worker figures do not depend on thread oversubscription.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from typing import Dict, List, Optional

import torch
from PIL import Image
from tabulate import tabulate
from torch.utils.data import BatchSampler, DataLoader, Dataset
from torchvision import transforms as classic

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastreid.config import get_cfg  # noqa: E402
from fastreid.data import build_reid_train_loader, generate_synthetic_dataset  # noqa: E402
from fastreid.data.build import fast_batch_collator  # noqa: E402
from fastreid.data.samplers import NaiveIdentitySampler  # noqa: E402

DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results", "bench_data.json"
)
RECIPES = {"BoT": "Base-bagtricks.yml", "SBS": "Base-SBS.yml"}


def recipe_cfg(recipe: str, root: str, batch_size: int, workers: int):
    configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(configs, RECIPES[recipe]))
    cfg.DATASETS.ROOT = root
    cfg.DATASETS.NAMES = ("SyntheticReID",)
    cfg.SOLVER.IMS_PER_BATCH = batch_size
    cfg.DATALOADER.NUM_INSTANCE = 4
    cfg.DATALOADER.NUM_WORKERS = workers
    return cfg


class PILBaselineDataset(Dataset):
    """The classic pipeline: PIL open -> torchvision.transforms on PIL -> ToTensor (x255)."""

    def __init__(self, items, cfg) -> None:
        self.items = items
        size = tuple(cfg.INPUT.SIZE_TRAIN)
        steps = []
        if cfg.INPUT.AUTOAUG.ENABLED:
            steps.append(classic.RandomApply([classic.AutoAugment()], p=cfg.INPUT.AUTOAUG.PROB))
        steps += [
            classic.Resize(size, interpolation=classic.InterpolationMode.BICUBIC),
            classic.Pad(cfg.INPUT.PADDING.SIZE, padding_mode=cfg.INPUT.PADDING.MODE),
            classic.RandomCrop(size),
            classic.RandomHorizontalFlip(cfg.INPUT.FLIP.PROB),
            classic.ToTensor(),
            classic.Lambda(lambda x: x * 255.0),
            classic.RandomErasing(p=cfg.INPUT.REA.PROB, value=list(cfg.INPUT.REA.VALUE)),
        ]
        self.transform = classic.Compose(steps)
        pids = sorted({item[1] for item in items})
        self.pid_dict = {p: i for i, p in enumerate(pids)}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, pid, camid, *_ = self.items[index]
        with Image.open(path) as img:
            image = self.transform(img.convert("RGB"))
        return {"images": image, "targets": self.pid_dict[pid], "camids": 0, "img_paths": path}


def baseline_loader(cfg, items) -> DataLoader:
    sampler = NaiveIdentitySampler(
        items, cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE, seed=0
    )
    workers = cfg.DATALOADER.NUM_WORKERS
    return DataLoader(
        PILBaselineDataset(items, cfg),
        batch_sampler=BatchSampler(sampler, cfg.SOLVER.IMS_PER_BATCH, drop_last=True),
        num_workers=workers,
        collate_fn=fast_batch_collator,
        persistent_workers=workers > 0,
    )


def images_per_second(loader, batches: int, warmup: int) -> float:
    iterator = iter(loader)
    for _ in range(warmup):  # worker start-up and the first prefetch are not throughput
        next(iterator)
    start = time.perf_counter()
    count = 0
    for _ in range(batches):
        count += next(iterator)["images"].shape[0]
    elapsed = time.perf_counter() - start
    del iterator
    return count / elapsed


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_rows(
    root: str, batch_size: int, batches: int, warmup: int, device: str, cpu_rows: List[Dict]
) -> List[Dict]:
    """Rows of the device data path: cache build, then batches from the cache."""
    rows: List[Dict] = []
    dev = torch.device(device)
    for recipe in RECIPES:
        cfg = recipe_cfg(recipe, root, batch_size, 0)
        cfg.MODEL.DEVICE = device
        cfg.DATALOADER.CACHE.ENABLED = True
        cfg.DATALOADER.CACHE.DECODE_WORKERS = os.cpu_count() or 1
        torch.set_num_threads(os.cpu_count() or 1)  # decoding threads use the whole machine
        start = time.perf_counter()
        loader = build_reid_train_loader(cfg)
        _synchronize(dev)
        build_seconds = time.perf_counter() - start
        torch.set_num_threads(1)
        cache = loader.collate_fn.cache
        iterator = iter(loader)
        for _ in range(warmup):
            next(iterator)
        _synchronize(dev)
        start = time.perf_counter()
        count = 0
        for _ in range(batches):
            count += next(iterator)["images"].shape[0]
        _synchronize(dev)
        ips = count / (time.perf_counter() - start)
        cpu = [r for r in cpu_rows if r["recipe"] == recipe]
        best_cpu = max(cpu, key=lambda r: r["fastreid_img_s"]) if cpu else None
        rows.append(
            {
                "recipe": recipe,
                "size": "x".join(str(s) for s in cfg.INPUT.SIZE_TRAIN),
                "device": str(dev),
                "cache": f"{cache.numel() / 2**20:.0f} MiB on {cache.device}",
                "cache_build_s": round(build_seconds, 2),
                "decode_img_s": round(len(loader.dataset) / build_seconds, 1),
                "device_path_img_s": round(ips, 1),
                "cpu_loader_img_s": best_cpu["fastreid_img_s"] if best_cpu else None,
                "cpu_loader_workers": best_cpu["workers"] if best_cpu else None,
                "speedup": round(ips / best_cpu["fastreid_img_s"], 2) if best_cpu else None,
            }
        )
        del iterator, loader, cache
    return rows


def run(
    quick: bool,
    output: str,
    workers_list: List[int],
    device: Optional[str] = None,
    device_only: bool = False,
) -> List[Dict]:
    torch.set_num_threads(1)
    num_ids, batch_size, batches, warmup = (16, 16, 3, 1) if quick else (300, 64, 30, 3)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows: List[Dict] = []
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        generate_synthetic_dataset(root, num_ids=num_ids, seed=0, height=128, width=64)
        gen_seconds = time.perf_counter() - start
        for recipe in RECIPES if not device_only else ():
            for workers in workers_list:
                cfg = recipe_cfg(recipe, root, batch_size, workers)
                ours = build_reid_train_loader(cfg)
                ours_ips = images_per_second(ours, batches, warmup)
                base = baseline_loader(cfg, ours.dataset.img_items)
                base_ips = images_per_second(base, batches, warmup)
                del ours, base
                rows.append(
                    {
                        "recipe": recipe,
                        "size": "x".join(str(s) for s in cfg.INPUT.SIZE_TRAIN),
                        "workers": workers,
                        "fastreid_img_s": round(ours_ips, 1),
                        "pil_baseline_img_s": round(base_ips, 1),
                        "speedup": round(ours_ips / base_ips, 2),
                    }
                )
        dev_batches = batches * (10 if torch.device(device).type == "cuda" else 1)
        dev_rows = device_rows(root, batch_size, dev_batches, warmup, device, rows)
    if rows:
        print(tabulate(rows, headers="keys", tablefmt="pipe"))
    print(tabulate(dev_rows, headers="keys", tablefmt="pipe"))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    result = {
        "benchmark": "bench_data",
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python", "benchmarks/bench_data.py", *sys.argv[1:]]),
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "gpu": gpu,
        },
        "setup": {
            "images": "synthetic 128x64 JPEG",
            "batch_size": batch_size,
            "batches_timed": batches,
            "generation_seconds": round(gen_seconds, 2),
        },
        "rows": rows,
        "device_rows": dev_rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {output}")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON result file")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=None, help="worker counts (default 0 1 2)"
    )
    parser.add_argument(
        "--device", default=None, help="device of the device data path rows (default cuda/cpu)"
    )
    parser.add_argument("--device-only", action="store_true", help="only the device data path rows")
    args = parser.parse_args(argv)
    workers = args.workers if args.workers is not None else ([0] if args.quick else [0, 1, 2])
    run(args.quick, args.output, workers, args.device, args.device_only)


if __name__ == "__main__":
    main()
