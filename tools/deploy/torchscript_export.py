"""Export a fastreid model to TorchScript (traced, frozen) and verify it against PyTorch.

    python tools/deploy/torchscript_export.py --config-file configs/Market1501/bagtricks_R50.yml \
        --name bot_R50 --output outputs/torchscript --opts MODEL.WEIGHTS model_final.pth
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
    parser = export_argument_parser("Export a fastreid model to TorchScript.")
    parser.add_argument("--device", default="cpu", help="device to trace on (cpu, cuda)")
    args = parser.parse_args()
    args.batch_size = max(2, args.batch_size)  # a batch of 1 would hide batch-size bugs

    from fastreid.export.torchscript import TorchScriptRunner, export_torchscript

    model = load_export_model(args, device=args.device)
    path = export_torchscript(
        model, Path(args.output) / f"{args.name}.pt", input_size(model), args.batch_size
    )
    print(f"Exported {path}")
    if not args.no_verify:
        verify_cli(model, TorchScriptRunner(path, device=args.device), args, "TorchScript")


if __name__ == "__main__":
    run_cli(main)
