"""Export a fastreid model to TorchScript (traced, frozen, optimised for inference)."""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fastreid.modeling.layers.pooling import GeneralizedMeanPooling, GeneralizedMeanPoolingP

from .atomic import atomic_path
from .onnx import FeatureOutput

__all__ = ["TorchScriptRunner", "export_torchscript"]

logger = logging.getLogger(__name__)


class _TraceableGeM(nn.Module):
    """GeM pooling with a fixed exponent written with ``clamp_min``: the same function as
    :func:`~fastreid.modeling.layers.pooling.generalized_mean`, but a ``clamp`` without an
    upper bound makes ``optimize_for_inference`` fail with "expected double"."""

    def __init__(self, p: float, output_size: int, eps: float) -> None:
        super().__init__()
        self.p = p
        self.output_size = output_size
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.clamp_min(x, self.eps).pow(self.p)
        return F.adaptive_avg_pool2d(x, self.output_size).pow(1.0 / self.p)


def prepare_for_tracing(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with the same features whose trace ``torch.jit.optimize_for_inference``
    can convert; ``model`` itself when nothing needs to change.

    GeM pooling (fixed or learnable exponent, as in AGW and SBS) becomes ``clamp_min`` and a
    plain-number exponent: the pass fails with an internal "expected double" assert on a
    ``clamp`` with no upper bound.
    """
    gems = [
        name
        for name, module in model.named_modules()
        if isinstance(module, (GeneralizedMeanPooling, GeneralizedMeanPoolingP))
        and float(module.p) > 0
    ]
    if not gems:
        return model
    model = copy.deepcopy(model)
    for name in gems:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        gem = getattr(parent, child)
        setattr(parent, child, _TraceableGeM(float(gem.p), gem.output_size, gem.eps))
    return model


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
    wrapped = FeatureOutput(prepare_for_tracing(model)).eval()
    device = next(iter(model.parameters())).device
    example = torch.rand(batch_size, 3, int(input_size[0]), int(input_size[1]), device=device)
    example = example * 255.0
    output = Path(output)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit is "deprecated"
        traced = torch.jit.trace(wrapped, (example,), check_trace=False)
        # Freezing inlines the weights and folds Conv+BN / Conv+Add / Conv+Mul.
        frozen = torch.jit.freeze(traced.eval(), optimize_numerics=optimize)
    with atomic_path(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.jit.save(frozen, str(tmp))
    logger.info("Wrote %s", output)
    return output


def _optimize_or_keep(module: torch.jit.ScriptModule, path: str | os.PathLike):
    """``torch.jit.optimize_for_inference(module)``, or ``module`` unchanged with a one-line
    warning when that optional pass fails (it is a speed-up, never needed for correct output)."""
    try:
        return torch.jit.optimize_for_inference(module)
    except Exception as exc:  # internal asserts surface as RuntimeError, others as anything
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        logger.warning(
            "torch.jit.optimize_for_inference failed on %s (%s); running it unoptimised.",
            path,
            first[:200],
        )
        return module


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
            warnings.simplefilter("ignore", category=FutureWarning)  # torch.jit is "deprecated"
            self.module = torch.jit.load(str(path), map_location=self.device).eval()
            if optimize:
                self.module = _optimize_or_keep(self.module, path)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(B, 3, H, W)`` float32 0-255 RGB -> raw features ``(B, D)``."""
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(images)).to(self.device))
        return out.float().cpu().numpy()
