"""Inference speed: PyTorch eager vs ONNX Runtime vs TorchScript, features/s and latency.

    python benchmarks/bench_infer.py            # BoT R50 256x128 and the demo R18 128x64
    python benchmarks/bench_infer.py --quick    # tiny smoke run

Models have random weights (speed does not depend on them). ONNX Runtime runs the exported
graph with all graph optimisations (BatchNorm folded into convolutions, NCHWc layouts);
TorchScript runs the frozen, inference-optimised module. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastreid.export.onnx import ONNXRuntimeRunner, export_onnx  # noqa: E402
from fastreid.export.torchscript import TorchScriptRunner, export_torchscript  # noqa: E402
from fastreid.export.verify import compare_features, synthetic_images, torch_runner  # noqa: E402
from fastreid.predictor import build_model_from_config  # noqa: E402

MODELS = {
    "BoT R50": ("configs/Market1501/bagtricks_R50.yml", (256, 128)),
    "demo R18": ("configs/Synthetic/bagtricks_R18.yml", (128, 64)),
}


def time_runner(run, images: np.ndarray, repeats: int) -> float:
    """Median latency in ms after three warm-up runs (TorchScript specialises on the shape)."""
    for _ in range(3):
        run(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(images)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def bench_model(label, config, size, batches, repeats, threads, workdir) -> list[dict]:
    model = build_model_from_config(
        ROOT / config,
        opts=["INPUT.SIZE_TEST", f"[{size[0]},{size[1]}]", "MODEL.HEADS.NUM_CLASSES", "8"],
        device="cpu",
    )
    onnx_path = export_onnx(model, Path(workdir) / "model.onnx", size)
    ts_path = export_torchscript(model, Path(workdir) / "model.pt", size)
    runners = {
        "PyTorch eager": torch_runner(model),
        "ONNX Runtime": ONNXRuntimeRunner(onnx_path, num_threads=threads),
        "TorchScript": TorchScriptRunner(ts_path),
    }
    rows = []
    for batch in batches:
        images = synthetic_images(batch, size)
        reference = runners["PyTorch eager"](images)
        eager_ms = None
        for name, run in runners.items():
            cosine, _ = compare_features(reference, run(images))
            latency = time_runner(run, images, repeats if batch == 1 else max(2, repeats // 5))
            eager_ms = latency if name == "PyTorch eager" else eager_ms
            rows.append(
                {
                    "model": label,
                    "input": f"{size[0]}x{size[1]}",
                    "batch": batch,
                    "runtime": name,
                    "latency_ms": round(latency, 2),
                    "features_per_s": round(batch * 1000 / latency, 1),
                    "speedup_vs_eager": round(eager_ms / latency, 2),
                    "min_cosine": round(cosine, 6),
                }
            )
            print(f"  {label} batch {batch} {name}: {latency:.1f} ms", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs at batch 1")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads")
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/bench_infer.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        models = {"demo R18": (MODELS["demo R18"][0], (64, 32))}
        batches, repeats = (1, 4), 2
    else:
        models, batches, repeats = MODELS, (1, 64), args.repeats
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for label, (config, size) in models.items():
            rows.extend(bench_model(label, config, size, batches, repeats, args.threads, workdir))
    try:
        from tabulate import tabulate

        print(tabulate(rows, headers="keys", tablefmt="github"))
    except ImportError:
        for row in rows:
            print(row)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", "benchmarks/bench_infer.py", *sys.argv[1:]]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "processor": platform.processor() or platform.machine(),
        },
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        "rows": rows,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
