"""Extract L2-normalised features with an exported ONNX model (ONNX Runtime) into a .npy file.

    python tools/deploy/onnx_inference.py --model outputs/onnx/bot_R50.onnx \
        --input datasets/Market-1501-v15.09.15/query --output outputs/query_feats.npy
"""

from __future__ import annotations

from fastreid.export.cli import inference_argument_parser, run_cli, run_inference


def main() -> None:
    parser = inference_argument_parser("Run an ONNX model with ONNX Runtime.")
    parser.add_argument("--model", required=True, help="the .onnx file")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    parser.add_argument("--backend", choices=("onnxruntime", "opencv"), default="onnxruntime")
    args = parser.parse_args()

    from fastreid.export.onnx import ONNXRuntimeRunner, OpenCVONNXRunner

    if args.backend == "opencv":
        runner = OpenCVONNXRunner(args.model)
    else:
        runner = ONNXRuntimeRunner(args.model, num_threads=args.threads)
        print(f"ONNX Runtime providers: {', '.join(runner.providers)}")
    run_inference(runner, args)


if __name__ == "__main__":
    run_cli(main)
