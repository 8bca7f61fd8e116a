#!/usr/bin/env python
"""FastTune on GPUs: a 2-trial search whose trials train on CUDA, as DDP groups over NCCL
when the machine has at least 2 GPUs, else as one-process trials with one GPU each.

    python projects/FastTune/device_check.py [--workers-per-trial N]

Uses the tiny synthetic set (made in a temporary folder) and ``configs/search_tiny.yml`` with
``MODEL.DEVICE cuda``. Prints one line per trial and ``device check: ok`` when every trial
completed on the GPU with NCCL (DDP) or CUDA (one process); exit code 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers-per-trial", type=int, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("device check: no CUDA device on this machine")
        return 1
    gpus = torch.cuda.device_count()
    workers = args.workers_per_trial or (2 if gpus >= 2 else 1)
    if workers > gpus:
        print(f"device check: {workers} processes per trial need {workers} GPUs, found {gpus}")
        return 1
    sys.path.insert(0, REPO)
    os.chdir(REPO)
    from fastreid.data.synthetic import generate_synthetic_dataset
    from projects.FastTune.tune_net import cli

    with tempfile.TemporaryDirectory(prefix="fasttune-device-") as workdir:
        root = os.path.join(workdir, "datasets")
        generate_synthetic_dataset(root, num_ids=16, seed=0, height=64, width=32, num_cams=3)
        summary = cli(
            ["--config-file", "projects/FastTune/configs/search_tiny.yml", "--srch-algo",
             "random", "--num-trials", "2", "--workers-per-trial", str(workers),
             "--resources-per-trial", "cpu=2,gpu=1", "MODEL.DEVICE", "cuda",
             "TUNE.MAX_CONCURRENT", "0", "DATASETS.ROOT", root,
             "OUTPUT_DIR", os.path.join(workdir, "out")]
        )  # fmt: skip
        ok = True
        for row in summary["rows"]:
            with open(row["log"], encoding="utf-8") as f:
                log = f.read()
            on_gpu = "MODEL:\n" in log and "DEVICE: cuda" in log
            ddp = f"World size: {workers}" in log
            print(
                f"trial {row['trial']}: {row['status']}, score {row['score']}, "
                f"config on cuda: {on_gpu}, world size {workers}: {ddp}"
            )
            ok = ok and row["status"] == "completed" and on_gpu and ddp
    print(f"device check: {'ok' if ok else 'FAILED'} ({workers} process(es) per trial)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
