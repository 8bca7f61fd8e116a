"""Export a fastreid model to ONNX (dynamic batch) and verify it against PyTorch.

    python tools/deploy/onnx_export.py --config-file configs/Market1501/bagtricks_R50.yml \
        --name bot_R50 --output outputs/onnx --opts MODEL.WEIGHTS logs/.../model_final.pth
"""

from __future__ import annotations

from pathlib import Path

from fastreid.export.cli import (
    export_argument_parser,
    input_size,
    load_export_model,
    run_cli,
    verify_cli,
)


def main() -> None:
    parser = export_argument_parser("Export a fastreid model to ONNX.")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    parser.add_argument(
        "--exporter",
        choices=("torchscript", "dynamo"),
        default="torchscript",
        help="torch.onnx exporter (classic TorchScript-based or dynamo)",
    )
    args = parser.parse_args()

    from fastreid.export.onnx import ONNXRuntimeRunner, export_onnx

    model = load_export_model(args)
    path = export_onnx(
        model,
        Path(args.output) / f"{args.name}.onnx",
        input_size(model),
        batch_size=args.batch_size,
        opset=args.opset,
        simplify=not args.no_simplify,
        exporter=args.exporter,
    )
    print(f"Exported {path}")
    if not args.no_verify:
        verify_cli(model, ONNXRuntimeRunner(path), args, "ONNX Runtime")


if __name__ == "__main__":
    run_cli(main)
