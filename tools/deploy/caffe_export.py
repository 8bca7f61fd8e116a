"""Export a fastreid model to Caffe (NAME.prototxt + NAME.caffemodel) and verify it.

    python tools/deploy/caffe_export.py --config-file configs/Market1501/bagtricks_R50-ibn.yml \
        --name bot_R50-ibn --output outputs/caffe --opts MODEL.WEIGHTS model_final.pth

The files are written through protobuf (no Caffe installation) and load in OpenCV's dnn
module (``cv2.dnn.readNetFromCaffe``, OpenCV 4.x). Verification uses OpenCV when it can import
Caffe models, else fastreid's reference Caffe interpreter (``--backend``).
"""

from __future__ import annotations

from fastreid.export.cli import (
    export_argument_parser,
    input_size,
    load_export_model,
    run_cli,
    verify_cli,
)


def main() -> None:
    parser = export_argument_parser("Export a fastreid model to Caffe.")
    parser.add_argument(
        "--backend",
        choices=("auto", "opencv", "reference"),
        default="auto",
        help="runtime used for verification",
    )
    args = parser.parse_args()

    from fastreid.export.caffe import caffe_runner, export_caffe, opencv_has_caffe

    model = load_export_model(args)
    prototxt, caffemodel = export_caffe(model, args.output, args.name, input_size(model))
    print(f"Exported {prototxt} and {caffemodel}")
    if not args.no_verify:
        backend = args.backend
        if backend == "auto":
            backend = "opencv" if opencv_has_caffe() else "reference"
        label = "Caffe (OpenCV dnn)" if backend == "opencv" else "Caffe (reference)"
        verify_cli(model, caffe_runner(prototxt, caffemodel, backend), args, label)


if __name__ == "__main__":
    run_cli(main)
