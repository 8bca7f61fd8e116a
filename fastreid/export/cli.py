"""Shared command-line plumbing of ``tools/deploy/*_export.py`` and ``*_inference.py``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from torch import nn

from fastreid.config import ConfigArgumentParser
from fastreid.utils.errors import EXIT_BAD_INPUT, describe_error, exit_on_bad_input

from .verify import (
    IMAGE_EXTENSIONS,
    ExportVerificationError,
    Runner,
    list_images,
    verification_images,
    verify_export,
)

__all__ = [
    "check_export_config",
    "export_argument_parser",
    "inference_argument_parser",
    "load_export_model",
    "run_cli",
    "run_inference",
    "verify_cli",
]

logger = logging.getLogger("fastreid.export")

#: (H, W) of the inference tools when neither the command line nor the model file gives one.
DEFAULT_SIZE = (256, 128)


def export_argument_parser(
    description: str, default_name: str = "model"
) -> argparse.ArgumentParser:
    """Arguments every export tool takes (FastReID's names: --config-file, --name, ...), and
    config overrides as trailing ``KEY VALUE`` pairs or after ``--opts``."""
    parser = ConfigArgumentParser(description=description)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="model config (YAML)")
    parser.add_argument("--name", default=default_name, help="base name of the exported file(s)")
    parser.add_argument("--output", default="outputs/deploy", help="output folder")
    parser.add_argument("--batch-size", type=int, default=1, help="batch of the example input")
    parser.add_argument(
        "--images",
        default=None,
        metavar="DIR",
        help="images for verification (default: synthetic images)",
    )
    parser.add_argument(
        "--verify-batch",
        type=int,
        default=4,
        help="images in the verification batch (a batch of 1 is checked too)",
    )
    parser.add_argument(
        "--threshold", type=float, default=0.999, help="minimum cosine similarity with PyTorch"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the PyTorch comparison")
    return parser


def check_export_config(args: argparse.Namespace) -> None:
    """Read ``--config-file`` / ``--opts`` without building anything: a missing file or a
    wrong key is reported before slower checks and work."""
    from fastreid.config import get_cfg

    if not Path(args.config_file).is_file():
        raise FileNotFoundError(f"Config file '{args.config_file}' does not exist (--config-file).")
    cfg = get_cfg()
    cfg.merge_from_file(str(args.config_file))
    cfg.merge_from_list(list(args.opts))


def load_export_model(args: argparse.Namespace, device: str = "cpu") -> nn.Module:
    """The eval-mode model of ``--config-file`` / ``--opts`` (errors name the fix)."""
    from fastreid.predictor import build_model_from_config

    # A missing --config-file falls back to the recipe of that name shipped with fastreid, or
    # is one error naming the closest shipped ones (CfgNode.merge_from_file).
    return build_model_from_config(args.config_file, opts=args.opts, device=device)


def input_size(model: nn.Module) -> tuple[int, int]:
    """``INPUT.SIZE_TEST`` of the model's config as ``(H, W)``."""
    size = model.cfg.INPUT.SIZE_TEST
    return int(size[0]), int(size[1])


def verify_cli(
    model: nn.Module,
    runner: Runner,
    args: argparse.Namespace,
    format_name: str,
    batch_sizes: Optional[Sequence[int]] = None,
) -> list:
    """Verify ``runner`` against ``model`` at the verification batch and at batch 1.

    Raises :class:`ExportVerificationError` when a cosine similarity is below the threshold.
    """
    sizes = batch_sizes or sorted({args.verify_batch, 1}, reverse=True)
    images = verification_images(args.images, input_size(model), max(sizes))
    results = [
        verify_export(model, runner, images[:n], format_name, threshold=args.threshold)
        for n in sizes
    ]
    for result in results:
        result.check()
    return results


def run_cli(main: Callable[[], None]) -> None:
    """Run ``main`` and turn expected failures into one-line errors and exit codes.

    Exit codes: 1 verification failed, 2 bad input (missing file or dependency, wrong config
    key, unsupported layer). ``FASTREID_DEBUG=1`` shows the full traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        exit_on_bad_input(main)
    except ExportVerificationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except NotImplementedError as exc:  # a layer an export format cannot express
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def inference_argument_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every inference tool takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--input",
        nargs="+",
        required=True,
        help="image files and/or folders (searched recursively)",
    )
    parser.add_argument(
        "--output",
        default="outputs/features.npy",
        help="features .npy (an image list .txt is written next to it)",
    )
    parser.add_argument(
        "--height",
        type=int,
        default=None,
        help=f"input height (default: the model's own where the file records it, else "
        f"{DEFAULT_SIZE[0]})",
    )
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help=f"input width (default: the model's own where the file records it, else "
        f"{DEFAULT_SIZE[1]})",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    return parser


def collect_images(inputs: Sequence[str]) -> list[str]:
    """Image paths from files and folders, in the given order (folders sorted)."""
    paths: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(str(p) for p in list_images(path))
        elif path.is_file():
            paths.append(str(path))
        else:
            raise FileNotFoundError(f"Input '{item}' is neither an image file nor a folder.")
    if not paths:
        raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {list(inputs)}.")
    return paths


def run_inference(runner: Runner, args: argparse.Namespace) -> np.ndarray:
    """Preprocess ``--input`` like the test loader, run ``runner`` in batches, save features.

    Writes L2-normalised features ``(N, D)`` float32 to ``--output`` and the image paths, one a
    line, to the same name with ``.txt``.
    """
    from fastreid.export.atomic import atomic_path
    from fastreid.predictor import preprocess_images
    from fastreid.utils.file_io import atomic_write_text

    paths = collect_images(args.input)
    expected = getattr(runner, "input_size", None)
    default = tuple(expected) if expected is not None else DEFAULT_SIZE
    size = (
        args.height if args.height is not None else int(default[0]),
        args.width if args.width is not None else int(default[1]),
    )
    source = "the model's input" if expected is not None else "the default"
    if args.height is None and args.width is None:
        print(f"Input size {size[0]}x{size[1]} ({source}; --height/--width to change).")
    if expected is not None and tuple(expected) != size:
        raise ValueError(
            f"The model takes {expected[0]}x{expected[1]} images but --height/--width ask for "
            f"{size[0]}x{size[1]}; pass --height {expected[0]} --width {expected[1]}."
        )
    chunks = []
    for start in range(0, len(paths), args.batch_size):
        batch = preprocess_images(paths[start : start + args.batch_size], size).numpy()
        chunks.append(runner(batch))
    features = np.concatenate(chunks).astype(np.float32)
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    output = Path(args.output)
    with atomic_path(output) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features)
    atomic_write_text(str(output.with_suffix(".txt")), "\n".join(paths) + "\n")
    print(f"Wrote {output}: {features.shape[0]} x {features.shape[1]} L2-normalised features.")
    return features
