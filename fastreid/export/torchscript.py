"""Export a fastreid model to TorchScript (traced, frozen, optimised for inference)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from .atomic import atomic_path
from .onnx import FeatureOutput

__all__ = ["TorchScriptRunner", "export_torchscript"]

logger = logging.getLogger(__name__)


def export_torchscript(
    model: nn.Module,
    output: str | os.PathLike,
    input_size: Sequence[int],
    batch_size: int = 2,
    optimize: bool = True,
) -> Path:
    """Trace ``model`` on a ``(batch_size, 3, H, W)`` example, freeze it and save it.

    The traced graph keeps the batch dimension symbolic, so the saved module accepts any
    batch. ``optimize`` folds BatchNorm and constant arithmetic into the convolutions; the
    device-specific ``torch.jit.optimize_for_inference`` pass is applied when loading
    (:class:`TorchScriptRunner`), because its output cannot be serialised.
    Load it with ``torch.jit.load`` in Python or ``torch::jit::load`` in libtorch.
    """
    wrapped = FeatureOutput(model).eval()
    device = next(iter(model.parameters())).device
    example = torch.rand(batch_size, 3, int(input_size[0]), int(input_size[1]), device=device)
    example = example * 255.0
    output = Path(output)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        traced = torch.jit.trace(wrapped, (example,), check_trace=False)
        # Freezing inlines the weights and folds Conv+BN / Conv+Add / Conv+Mul.
        frozen = torch.jit.freeze(traced.eval(), optimize_numerics=optimize)
    with atomic_path(output) as tmp:
        torch.jit.save(frozen, str(tmp))
    logger.info("Wrote %s", output)
    return output


class TorchScriptRunner:
    """Run a saved TorchScript model: ``runner(images) -> features`` (numpy in and out)."""

    def __init__(
        self,
        path: str | os.PathLike,
        device: Optional[Union[str, torch.device]] = None,
        optimize: bool = True,
    ) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"TorchScript model '{path}' does not exist (run torchscript_export.py)."
            )
        from fastreid.utils.env import resolve_device

        self.device = resolve_device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            self.module = torch.jit.load(str(path), map_location=self.device).eval()
            if optimize:
                self.module = torch.jit.optimize_for_inference(self.module)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(B, 3, H, W)`` float32 0-255 RGB -> raw features ``(B, D)``."""
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(images)).to(self.device))
        return out.float().cpu().numpy()
