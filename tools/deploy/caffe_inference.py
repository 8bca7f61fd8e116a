"""Extract L2-normalised features with an exported Caffe model (OpenCV dnn) into a .npy file.

    python tools/deploy/caffe_inference.py --prototxt outputs/caffe/bot.prototxt \
        --caffemodel outputs/caffe/bot.caffemodel --input query/ --output feats.npy
"""

from __future__ import annotations

from fastreid.export.cli import inference_argument_parser, run_cli, run_inference


def main() -> None:
    parser = inference_argument_parser("Run a Caffe model with OpenCV's dnn module.")
    parser.add_argument("--prototxt", required=True, help="the .prototxt file")
    parser.add_argument("--caffemodel", required=True, help="the .caffemodel file")
    parser.add_argument(
        "--backend",
        choices=("auto", "opencv", "reference"),
        default="auto",
        help="OpenCV dnn (4.x) or the reference interpreter; auto picks OpenCV "
        "when it can import Caffe models",
    )
    args = parser.parse_args()

    from fastreid.export.caffe import caffe_runner

    run_inference(caffe_runner(args.prototxt, args.caffemodel, args.backend), args)


if __name__ == "__main__":
    run_cli(main)
