"""Build a TensorRT engine (fp32 / fp16 / int8) from the ONNX export and verify it.

    python tools/deploy/trt_export.py --config-file configs/Market1501/bagtricks_R50.yml \
        --name bot_R50 --output outputs/trt --mode fp16 --opts MODEL.WEIGHTS model_final.pth
    # int8: add --mode int8 --calib-images datasets/Market-1501-v15.09.15/bounding_box_train

The ONNX model is exported first (or taken from --onnx); needs an NVIDIA GPU and tensorrt,
checked before anything is built or written. A fresh ONNX export goes to a temporary folder
and replaces NAME.onnx only once the engine is built.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastreid.export.cli import (
    check_export_config,
    export_argument_parser,
    input_size,
    load_export_model,
    run_cli,
    verify_cli,
)
from fastreid.utils.file_io import ensure_dir


def main() -> None:
    parser = export_argument_parser("Build a TensorRT engine from a fastreid model.")
    parser.add_argument("--mode", choices=("fp32", "fp16", "int8"), default="fp32")
    parser.add_argument("--onnx", default=None, help="existing ONNX export (default: export now)")
    parser.add_argument("--calib-images", default=None, help="image folder for INT8 calibration")
    parser.add_argument("--calib-cache", default=None, help="calibration cache file")
    parser.add_argument("--max-batch", type=int, default=64, help="largest batch of the profile")
    parser.add_argument("--opt-batch", type=int, default=8, help="batch TensorRT tunes for")
    parser.add_argument("--workspace-gb", type=float, default=4.0)
    args = parser.parse_args()

    from fastreid.export.onnx import export_onnx
    from fastreid.export.tensorrt import TensorRTRunner, build_engine, require_tensorrt

    # Before anything is built or written: the config, then tensorrt and a GPU.
    check_export_config(args)
    require_tensorrt("trt_export.py")
    model = load_export_model(args, device="cuda")
    size = input_size(model)
    output = Path(args.output)
    engine_path = output / f"{args.name}.engine"
    onnx_path = Path(args.onnx) if args.onnx else output / f"{args.name}.onnx"
    with tempfile.TemporaryDirectory(
        prefix=".trt_export.", dir=ensure_dir(str(output), "output folder")
    ) as tmp:
        source = onnx_path
        if not args.onnx:
            # A fresh ONNX export replaces an existing NAME.onnx only once the engine is built.
            source = export_onnx(
                model, Path(tmp) / onnx_path.name, size, batch_size=args.batch_size
            )
        engine = build_engine(
            source,
            engine_path,
            size,
            mode=args.mode,
            opt_batch=min(args.opt_batch, args.max_batch),
            max_batch=args.max_batch,
            workspace_gb=args.workspace_gb,
            calibration_dir=args.calib_images,
            calibration_cache=args.calib_cache,
        )
        if not args.onnx:
            os.replace(source, onnx_path)
    print(f"Exported {engine}")
    if not args.no_verify:
        # Reduced precision is checked against a looser bound unless one is given.
        if args.mode != "fp32" and args.threshold == 0.999:
            args.threshold = 0.99 if args.mode == "fp16" else 0.95
        verify_cli(model, TensorRTRunner(engine), args, f"TensorRT {args.mode}")


if __name__ == "__main__":
    run_cli(main)
