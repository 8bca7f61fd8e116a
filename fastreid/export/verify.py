"""Check an exported model against the PyTorch model it came from (shared by every format).

Every export tool ends with :func:`verify_export`: the same batch goes through PyTorch and the
exported model; the report holds the minimum cosine similarity over the batch, the maximum
absolute difference of the raw features and the median latency of both. A cosine below the
threshold (0.999 for fp32) fails the export.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

__all__ = [
    "ExportVerificationError",
    "VerificationResult",
    "compare_features",
    "measure_latency",
    "synthetic_images",
    "torch_runner",
    "verification_images",
    "verify_export",
]

logger = logging.getLogger(__name__)

#: Runs a batch ``(B, 3, H, W)`` float32 0-255 RGB and returns raw features ``(B, D)``.
Runner = Callable[[np.ndarray], np.ndarray]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ExportVerificationError(RuntimeError):
    """The exported model's features disagree with PyTorch's."""


@dataclass
class VerificationResult:
    """Agreement and speed of one exported model against PyTorch on one batch."""

    format: str
    batch_size: int
    min_cosine: float
    max_abs_diff: float
    torch_latency_ms: float
    export_latency_ms: float
    threshold: float

    @property
    def passed(self) -> bool:
        """Whether the minimum cosine similarity reaches the threshold."""
        return self.min_cosine >= self.threshold

    def summary(self) -> str:
        """One human-readable line."""
        verdict = "OK" if self.passed else f"FAILED (threshold {self.threshold})"
        return (
            f"[{self.format}] batch {self.batch_size}: min cosine {self.min_cosine:.6f}, "
            f"max abs diff {self.max_abs_diff:.3e}, latency PyTorch {self.torch_latency_ms:.1f} ms"
            f" vs {self.format} {self.export_latency_ms:.1f} ms -> {verdict}"
        )

    def as_dict(self) -> dict:
        """Plain dict (for JSON)."""
        return {**asdict(self), "passed": self.passed}

    def check(self) -> None:
        """Raise :class:`ExportVerificationError` when the export does not match PyTorch."""
        if not self.passed:
            raise ExportVerificationError(
                f"{self.format} export does not match PyTorch: min cosine {self.min_cosine:.6f} "
                f"< {self.threshold} (max abs diff {self.max_abs_diff:.3e}). The exported file is "
                "kept for inspection; report the model and format if this is unexpected."
            )


def compare_features(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """Minimum cosine similarity over rows and maximum absolute difference.

    Args:
        reference: ``(B, D)`` features from PyTorch.
        candidate: ``(B, D)`` features from the exported model.
    """
    reference = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    candidate = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    if reference.shape != candidate.shape:
        raise ExportVerificationError(
            f"Feature shapes differ: PyTorch {reference.shape} vs exported {candidate.shape}."
        )
    dot = (reference * candidate).sum(axis=1)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = dot / np.maximum(norms, 1e-12)
    return float(cosine.min()), float(np.abs(reference - candidate).max())


def measure_latency(run: Runner, images: np.ndarray, warmup: int = 1, repeats: int = 3) -> float:
    """Median wall time of ``run(images)`` in milliseconds."""
    for _ in range(warmup):
        run(images)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        run(images)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def torch_runner(model: nn.Module) -> Runner:
    """Wrap an eval-mode fastreid model as a :data:`Runner` (CPU numpy in, numpy out)."""
    from fastreid.predictor import model_device

    device = model_device(model)

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(images)).to(device))
        return out.float().cpu().numpy()

    return run


def synthetic_images(count: int, size: Sequence[int], seed: int = 0) -> np.ndarray:
    """Deterministic smooth random images ``(count, 3, H, W)`` float32 in 0-255.

    Low-resolution noise upsampled bilinearly, so the batch has image-like spatial structure
    (constant or white-noise inputs hide layout bugs such as a transposed weight).
    """
    height, width = int(size[0]), int(size[1])
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, max(2, height // 8), max(2, width // 8), generator=generator)
    fine = torch.rand(count, 3, height, width, generator=generator)
    smooth = nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
    return ((0.8 * smooth + 0.2 * fine) * 255.0).clamp(0, 255).numpy().astype(np.float32)


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Image folder '{folder}' does not exist (check --images).")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) under '{folder}' (check --images)."
        )
    return files


def verification_images(
    image_dir: Optional[str | Path], size: Sequence[int], count: int, seed: int = 0
) -> np.ndarray:
    """The verification batch: ``count`` real images from ``image_dir`` or synthetic ones.

    Real images are preprocessed exactly as the test loader does (RGB, resized to ``size``,
    float 0-255); fewer images than ``count`` are cycled.
    """
    if image_dir is None:
        return synthetic_images(count, size, seed)
    from fastreid.predictor import preprocess_images

    files = list_images(image_dir)
    picked = [files[i % len(files)] for i in range(count)]
    return preprocess_images([str(p) for p in picked], size).numpy()


def verify_export(
    model: nn.Module,
    exported: Runner,
    images: np.ndarray,
    format_name: str,
    threshold: float = 0.999,
    repeats: int = 3,
    log: bool = True,
) -> VerificationResult:
    """Run ``images`` through PyTorch and the exported model and compare the features.

    Args:
        model: the eval-mode PyTorch model.
        exported: runner of the exported model (see :data:`Runner`).
        images: ``(B, 3, H, W)`` float32 0-255 RGB.
        format_name: label in messages ("ONNX Runtime", "TorchScript", ...).
        threshold: minimum cosine similarity to pass (0.999 for fp32 exports).
        repeats: timed runs per side (median reported) after one warm-up run.
    """
    images = np.ascontiguousarray(images, dtype=np.float32)
    reference_run = torch_runner(model)
    reference = reference_run(images)
    candidate = exported(images)
    min_cosine, max_abs = compare_features(reference, candidate)
    result = VerificationResult(
        format=format_name,
        batch_size=len(images),
        min_cosine=min_cosine,
        max_abs_diff=max_abs,
        torch_latency_ms=measure_latency(reference_run, images, warmup=0, repeats=repeats),
        export_latency_ms=measure_latency(exported, images, warmup=0, repeats=repeats),
        threshold=threshold,
    )
    if log:
        print(result.summary(), flush=True)
    return result
