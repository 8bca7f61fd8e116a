"""Export agreement on every shipped re-ID recipe at its real input size.

    python benchmarks/bench_export.py                      # all recipes, ONNX / TorchScript / Caffe
    python benchmarks/bench_export.py --recipes sbs_R50    # one recipe

Each recipe is built as the export tools build it (``INPUT.SIZE_TEST`` of the YAML, e.g.
256x128 for BoT / AGW, 384x128 for SBS / MGN) with seeded random weights whose norm layers
get random affine parameters and BN statistics measured on synthetic images (a trained model's
activations stay in a similar range). Each format is exported with the tools' settings and
compared with PyTorch on the same seeded synthetic images at batch 1 and ``--batch``: minimum
cosine similarity and largest absolute difference of the raw features. TorchScript runs with
``torch.jit.optimize_for_inference`` as ``torchscript_inference.py`` does; when that optional
pass falls back, the row says so. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastreid.export.verify import compare_features, synthetic_images, torch_runner  # noqa: E402
from fastreid.predictor import build_model_from_config  # noqa: E402

RECIPES = {
    "bot_R50": "configs/Market1501/bagtricks_R50.yml",
    "bot_R50-ibn": "configs/Market1501/bagtricks_R50-ibn.yml",
    "agw_R50": "configs/Market1501/AGW_R50.yml",
    "agw_R50-ibn": "configs/Market1501/AGW_R50-ibn.yml",
    "sbs_R50": "configs/Market1501/sbs_R50.yml",
    "sbs_R50-ibn": "configs/Market1501/sbs_R50-ibn.yml",
    "mgn_R50": "configs/Market1501/mgn_R50.yml",
    "mgn_R50-ibn": "configs/Market1501/mgn_R50-ibn.yml",
}
FORMATS = ("onnx", "torchscript", "caffe")


def calibrated_random_model(config: str, seed: int = 0) -> nn.Module:
    """The recipe's eval-mode model (random init, seeded) with realistic norm statistics."""
    torch.manual_seed(seed)
    model = build_model_from_config(
        ROOT / config, opts=["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "8"]
    )
    size = tuple(int(v) for v in model.cfg.INPUT.SIZE_TEST)
    generator = torch.Generator().manual_seed(seed)
    batch_norms = []
    for module in model.modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.InstanceNorm2d)):
            if module.affine:
                module.weight.data.uniform_(0.5, 1.5, generator=generator)
                module.bias.data.uniform_(-0.2, 0.2, generator=generator)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                batch_norms.append(module)
    model.eval()
    for module in batch_norms:  # cumulative statistics over one batch of test-like images
        module.reset_running_stats()
        module.momentum = None
        module.train()
    with torch.no_grad():
        model(torch.as_tensor(synthetic_images(8, size, seed=seed)))
    for module in batch_norms:
        module.momentum = 0.1
    return model.eval()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def export_and_load(fmt: str, model: nn.Module, folder: Path, name: str, size, batch: int):
    """Export ``model`` in ``fmt`` with the tool's settings; return the runner the tool uses."""
    if fmt == "onnx":
        from fastreid.export.onnx import ONNXRuntimeRunner, export_onnx

        path = export_onnx(model, folder / f"{name}.onnx", size, batch_size=1)
        return ONNXRuntimeRunner(path, providers=["CPUExecutionProvider"])
    if fmt == "torchscript":
        from fastreid.export.torchscript import TorchScriptRunner, export_torchscript

        path = export_torchscript(model, folder / f"{name}.pt", size, batch_size=max(2, batch))
        return TorchScriptRunner(path, device="cpu")
    if fmt == "caffe":
        from fastreid.export.caffe import caffe_runner, export_caffe, opencv_has_caffe

        prototxt, caffemodel = export_caffe(model, folder, name, size)
        backend = "opencv" if opencv_has_caffe() else "reference"
        return caffe_runner(prototxt, caffemodel, backend)
    raise ValueError(f"unknown format {fmt!r}")


def measure(name: str, formats, batch: int, seed: int) -> list[dict]:
    model = calibrated_random_model(RECIPES[name], seed)
    size = tuple(int(v) for v in model.cfg.INPUT.SIZE_TEST)
    images = synthetic_images(batch, size, seed=seed + 1)
    reference = torch_runner(model)(images)
    rows = []
    for fmt in formats:
        capture = _Capture()
        logging.getLogger("fastreid").addHandler(capture)
        logging.getLogger("fastreid").setLevel(logging.WARNING)
        row = {"recipe": name, "config": RECIPES[name], "size": list(size), "format": fmt}
        try:
            with tempfile.TemporaryDirectory() as tmp:
                runner = export_and_load(fmt, model, Path(tmp), name, size, batch)
                for n in sorted({1, batch}):
                    cosine, max_diff = compare_features(reference[:n], runner(images[:n]))
                    row[f"batch{n}"] = {"min_cosine": cosine, "max_abs_diff": max_diff}
            row["status"] = "ok"
        except NotImplementedError as exc:  # a layer the format cannot express (Caffe)
            row["status"] = f"unsupported: {str(exc).splitlines()[0]}"
        finally:
            logging.getLogger("fastreid").removeHandler(capture)
        row["warnings"] = capture.messages
        row["feature_max_abs"] = float(np.abs(reference).max())
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _line(row: dict) -> str:
    size = "x".join(str(v) for v in row["size"])
    if row["status"] != "ok":
        return f"| {row['recipe']} | {size} | {row['format']} | {row['status'][:70]} | | |"
    cos = min(v["min_cosine"] for k, v in row.items() if k.startswith("batch"))
    diff = max(v["max_abs_diff"] for k, v in row.items() if k.startswith("batch"))
    note = " (optimize_for_inference fell back)" if row["warnings"] else ""
    return (
        f"| {row['recipe']} | {size} | {row['format']}{note} | {cos:.6f} | {diff:.1e} | "
        f"{row['feature_max_abs']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--batch", type=int, default=4, help="verification batch (and 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/bench_export.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)
    print("| recipe | input | format | min cosine | max abs diff | max abs feature |")
    print("|---|---|---|---|---|---|")
    rows = []
    for name in args.recipes:
        rows.extend(measure(name, args.formats, args.batch, args.seed))
    import onnxruntime

    result = {
        "command": "python benchmarks/bench_export.py " + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "machine": platform.machine(),
        "threads": args.threads,
        "seed": args.seed,
        "batch": args.batch,
        "rows": rows,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, output)
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
