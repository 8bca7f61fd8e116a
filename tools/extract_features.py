"""Extract L2-normalised features of images with a fastreid model into a .npy file.

    python tools/extract_features.py --config-file configs/Market1501/bagtricks_R50.yml \
        --input query/ --output feats.npy --opts MODEL.WEIGHTS model_final.pth
    (config overrides go after --opts, or trailing as KEY VALUE when --input comes earlier)
    python tools/extract_features.py --checkpoint logs/market1501/bagtricks_R50 --input a.jpg b.jpg

The image paths are written, one a line, next to the .npy (same name, .txt).
"""

from __future__ import annotations

from fastreid.config import ConfigArgumentParser
from fastreid.export.cli import collect_images, run_cli


def main() -> None:
    parser = ConfigArgumentParser(description="Extract features with fastreid.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-file", help="model config (weights via --opts MODEL.WEIGHTS)")
    source.add_argument("--checkpoint", help="training output folder or checkpoint file")
    parser.add_argument("--input", nargs="+", required=True, help="image files and/or folders")
    parser.add_argument("--output", default="outputs/features.npy", help="features .npy")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: MODEL.DEVICE)")
    args = parser.parse_args()

    from pathlib import Path

    import numpy as np

    from fastreid.export.atomic import atomic_path
    from fastreid.predictor import FeatureExtractor, build_model_from_config, load_model
    from fastreid.utils.file_io import atomic_write_text

    if args.config_file:
        model = build_model_from_config(args.config_file, opts=args.opts, device=args.device)
    else:
        model = load_model(args.checkpoint, opts=args.opts, device=args.device)
    extractor = FeatureExtractor(model, batch_size=args.batch_size)
    paths = collect_images(args.input)
    features = extractor(paths).numpy()
    output = Path(args.output)
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.save(handle, features)
    atomic_write_text(str(output.with_suffix(".txt")), "\n".join(paths) + "\n")
    print(f"Wrote {output}: {features.shape[0]} x {features.shape[1]} L2-normalised features.")


if __name__ == "__main__":
    run_cli(main)
