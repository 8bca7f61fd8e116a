#!/usr/bin/env python
"""Print the top-k classes, with their names and probabilities, for images or folders.

    python projects/FastCls/predict.py --model projects/FastCls/logs/fmnist_small_resnet \
        --input shirt.png more_images/ --topk 3

``--model`` is a training output folder (or one of its checkpoints): its config.yaml builds
the network and its idx2class.json names the classes. Folders are searched recursively.
Bad input ends with one ``error:`` line and exit code 2. An unreadable image is such an error
unless ``DATALOADER.SKIP_CORRUPT`` is True (in the model's config.yaml or through
``--opts DATALOADER.SKIP_CORRUPT True``): it is then skipped with a warning on stderr and
every other image is predicted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple, Union

import torch

if not __package__:  # run as a script: import this project from the folder that holds it
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))
    __package__ = f"{os.path.basename(os.path.dirname(_HERE))}.{os.path.basename(_HERE)}"

from fastreid.data.data_utils import CorruptImageError, read_image
from fastreid.data.transforms import build_transforms
from fastreid.predictor import load_model
from fastreid.utils.errors import exit_on_bad_input

from . import fastcls  # noqa: F401  (registers the project's backbone and datasets)
from .fastcls.datasets import IMAGE_EXTENSIONS
from .fastcls.trainer import load_idx2class


def collect_images(inputs: Sequence[str]) -> List[str]:
    """Image files named in ``inputs``, folders expanded recursively in sorted order."""
    paths: List[str] = []
    for entry in inputs:
        if os.path.isdir(entry):
            found = sorted(
                str(p) for p in Path(entry).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not found:
                raise FileNotFoundError(
                    f"Folder {entry} holds no image ({', '.join(IMAGE_EXTENSIONS)})."
                )
            paths.extend(found)
        elif os.path.isfile(entry):
            paths.append(entry)
        else:
            raise FileNotFoundError(f"--input {entry} is neither an image file nor a folder.")
    return paths


def predict(
    model: torch.nn.Module,
    paths: Sequence[str],
    topk: int = 5,
    batch_size: int = 64,
    skip_corrupt: bool = False,
) -> Iterable[Tuple[str, Union[List[Tuple[int, float]], CorruptImageError]]]:
    """Yield ``(path, [(class index, probability), ...])`` with the ``topk`` best classes.

    An unreadable image raises :class:`CorruptImageError` naming it; with ``skip_corrupt``
    (``DATALOADER.SKIP_CORRUPT``) it is yielded as ``(path, error)`` instead and the other
    images are still predicted."""
    transform = build_transforms(model.cfg, is_train=False, to_float=True)
    device = next(model.parameters()).device
    for start in range(0, len(paths), batch_size):
        chunk, images = [], []
        for path in paths[start : start + batch_size]:
            try:
                images.append(transform(read_image(path)))
            except CorruptImageError as error:
                if not skip_corrupt:
                    raise
                yield path, error
                continue
            chunk.append(path)
        if not chunk:
            continue
        with torch.no_grad():
            probs = model({"images": torch.stack(images).to(device)}).float().softmax(dim=1)
        k = min(topk, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        for path, vals, idxs in zip(chunk, values.tolist(), indices.tolist()):
            yield path, list(zip(idxs, vals))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="training output folder or checkpoint (.pth)"
    )
    parser.add_argument("--input", nargs="+", required=True, help="image files and/or folders")
    parser.add_argument("--topk", type=int, default=5, help="classes to print per image")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: MODEL.DEVICE)")
    parser.add_argument(
        "--opts", nargs=argparse.REMAINDER, default=[], help="config KEY VALUE overrides"
    )
    args = parser.parse_args(argv)
    if args.topk < 1:
        raise ValueError(f"--topk must be at least 1, got {args.topk}.")
    folder = args.model if os.path.isdir(args.model) else os.path.dirname(args.model) or "."
    names = load_idx2class(folder)
    paths = collect_images(args.input)
    model = load_model(args.model, opts=args.opts, device=args.device)
    skip = bool(model.cfg.DATALOADER.SKIP_CORRUPT)  # the model's config, after --opts
    skipped = 0
    for path, best in predict(model, paths, args.topk, skip_corrupt=skip):
        if isinstance(best, CorruptImageError):
            skipped += 1
            print(f"warning: skipped unreadable image {path}: {best}", file=sys.stderr)
            continue
        ranked = "  ".join(
            f"{rank}. {names[i] if i < len(names) else i} ({p * 100:.2f}%)"
            for rank, (i, p) in enumerate(best, start=1)
        )
        print(f"{path}\t{ranked}")
    if skipped:
        print(
            f"warning: {skipped} of {len(paths)} images were unreadable and skipped "
            "(DATALOADER.SKIP_CORRUPT).",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_bad_input(main))
