"""Export a fastreid model to ONNX (dynamic batch) and run it with ONNX Runtime or OpenCV."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from fastreid.utils.dependencies import install_hint

from .atomic import atomic_path
from .dependencies import require

__all__ = [
    "FeatureOutput",
    "ONNXRuntimeRunner",
    "OpenCVONNXRunner",
    "export_onnx",
    "onnx_input_size",
]

logger = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "features"


class FeatureOutput(nn.Module):
    """Wrap a fastreid model so ``forward(images) -> features (B, D)`` is a plain tensor.

    Meta-archs return the feature tensor in eval mode; a dict output (some project heads)
    is reduced to its ``"features"`` entry.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(images)
        if isinstance(out, dict):
            out = out["features"]
        return out.flatten(1) if out.dim() > 2 else out


def export_onnx(
    model: nn.Module,
    output: str | os.PathLike,
    input_size: Sequence[int],
    batch_size: int = 1,
    opset: int = 17,
    simplify: bool = True,
    dynamic_batch: bool = True,
    exporter: str = "torchscript",
) -> Path:
    """Write ``model`` as an ONNX file with input ``images`` and output ``features``.

    Args:
        model: eval-mode fastreid model (input ``(B, 3, H, W)`` float 0-255 RGB).
        output: target ``.onnx`` path; written atomically.
        input_size: ``(H, W)``.
        batch_size: batch of the example input (the batch axis stays dynamic unless
            ``dynamic_batch`` is False).
        opset: ONNX opset (>= 17).
        simplify: run onnxsim when installed (constant folding, shape simplification).
        exporter: ``"torchscript"`` (the classic exporter, folds BatchNorm into convolutions)
            or ``"dynamo"`` (the torch.export-based one).
    """
    onnx = require("onnx", "ONNX export")
    if opset < 17:
        raise ValueError(f"opset {opset} is too old; use 17 or newer.")
    if exporter not in ("torchscript", "dynamo"):
        raise ValueError(f"Unknown exporter '{exporter}'; use 'torchscript' or 'dynamo'.")
    wrapped = FeatureOutput(model).eval()
    device = next(iter(model.parameters())).device
    example = torch.rand(batch_size, 3, int(input_size[0]), int(input_size[1]), device=device)
    example = example * 255.0
    output = Path(output)
    with atomic_path(output) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=UserWarning)  # InstanceNorm training-mode note
        if exporter == "torchscript":
            torch.onnx.export(
                wrapped,
                (example,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=(
                    {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
                ),
                do_constant_folding=True,
            )
        else:
            batch_dim = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(
                wrapped,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch_dim},) if dynamic_batch else None,
                optimize=True,
            )
            program.save(str(tmp), external_data=False)
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        if simplify:
            proto = _simplify(proto)
        onnx.save(proto, str(tmp))
    logger.info("Wrote %s", output)
    return output


def _simplify(proto):
    try:
        import onnxsim
    except ImportError:
        logger.info(f"onnxsim not installed: skipping simplification ({install_hint('onnxsim')}).")
        return proto
    try:
        simplified, ok = onnxsim.simplify(proto)
    except Exception as exc:  # onnxsim failures must not fail the export
        logger.warning("onnxsim failed (%s); keeping the unsimplified model.", exc)
        return proto
    if not ok:
        logger.warning("onnxsim could not validate the simplified model; keeping the original.")
        return proto
    return simplified


class ONNXRuntimeRunner:
    """Run an exported ONNX model with ONNX Runtime: ``runner(images) -> features``.

    Args:
        path: ``.onnx`` file.
        providers: ONNX Runtime providers; default CUDA (when available) then CPU.
        num_threads: intra-op threads (default: ONNX Runtime's choice, one per core).
        optimized_model_path: where to save the graph after ONNX Runtime's optimisations.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        providers: Optional[Sequence[str]] = None,
        num_threads: Optional[int] = None,
        optimized_model_path: Optional[str] = None,
    ) -> None:
        ort = require("onnxruntime", "ONNX Runtime inference")
        if not Path(path).is_file():
            raise FileNotFoundError(f"ONNX model '{path}' does not exist (run onnx_export.py).")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        if optimized_model_path:
            options.optimized_model_filepath = str(optimized_model_path)
        if providers is None:
            available = ort.get_available_providers()
            providers = [
                p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
            ]
        self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.path = str(path)
        shape = self.session.get_inputs()[0].shape  # e.g. ['batch', 3, 256, 128]
        static = len(shape) == 4 and all(isinstance(d, int) for d in shape[2:])
        #: (H, W) the model was exported for; None when the export left them dynamic.
        self.input_size: Optional[tuple[int, int]] = (shape[2], shape[3]) if static else None

    @property
    def providers(self) -> list[str]:
        """Providers the session actually uses."""
        return self.session.get_providers()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(B, 3, H, W)`` float32 0-255 RGB -> raw features ``(B, D)``."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if self.input_size is not None and tuple(images.shape[2:]) != self.input_size:
            height, width = self.input_size
            raise ValueError(
                f"ONNX model '{self.path}' takes {height}x{width} images (its INPUT.SIZE_TEST) "
                f"but got {images.shape[2]}x{images.shape[3]}; resize the inputs to "
                f"{height}x{width} (onnx_inference.py: --height {height} --width {width})."
            )
        return self.session.run([self.output_name], {self.input_name: images})[0]


def onnx_input_size(path: str | os.PathLike) -> Optional[tuple[int, int]]:
    """``(H, W)`` of the ONNX model's first input when the file fixes them, else None (also
    when the ``onnx`` package is not installed)."""
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[2:]):
        return None
    return int(dims[2].dim_value), int(dims[3].dim_value)


class OpenCVONNXRunner:
    """Run an exported ONNX model with OpenCV's dnn module (``cv2.dnn.readNetFromONNX``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        cv2 = require("cv2", "OpenCV dnn inference")
        if not Path(path).is_file():
            raise FileNotFoundError(f"ONNX model '{path}' does not exist (run onnx_export.py).")
        self.net = cv2.dnn.readNetFromONNX(str(path))
        #: (H, W) the model was exported for; None when unknown.
        self.input_size = onnx_input_size(path)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(B, 3, H, W)`` float32 0-255 RGB -> raw features ``(B, D)``."""
        self.net.setInput(np.ascontiguousarray(images, dtype=np.float32))
        out = self.net.forward()
        return np.asarray(out).reshape(len(images), -1)
