"""Extract L2-normalised features with a TensorRT engine into a .npy file (GPU).

    python tools/deploy/trt_inference.py --model outputs/trt/bot_R50.engine \
        --input query/ --output outputs/query_feats.npy
"""

from __future__ import annotations

from fastreid.export.cli import inference_argument_parser, run_cli, run_inference


def main() -> None:
    parser = inference_argument_parser("Run a TensorRT engine.")
    parser.add_argument("--model", required=True, help="the .engine file")
    args = parser.parse_args()

    from fastreid.export.tensorrt import TensorRTRunner

    run_inference(TensorRTRunner(args.model), args)


if __name__ == "__main__":
    run_cli(main)
