"""Extract L2-normalised features with an exported TorchScript model into a .npy file.

    python tools/deploy/torchscript_inference.py --model outputs/torchscript/bot_R50.pt \
        --input query/ --output outputs/query_feats.npy
"""

from __future__ import annotations

from fastreid.export.cli import inference_argument_parser, run_cli, run_inference


def main() -> None:
    parser = inference_argument_parser("Run a TorchScript model.")
    parser.add_argument("--model", required=True, help="the .pt file")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    from fastreid.export.torchscript import TorchScriptRunner

    run_inference(TorchScriptRunner(args.model, device=args.device), args)


if __name__ == "__main__":
    run_cli(main)
