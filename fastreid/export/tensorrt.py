"""Build TensorRT engines from the exported ONNX model (TensorRT 10 API) and run them.

Flow: ONNX parser -> network -> builder config (fp32 / fp16 / int8, dynamic-batch
optimisation profile) -> serialized engine. INT8 uses an entropy calibrator fed with a
folder of images (preprocessed like the test loader) and keeps a calibration cache. Device
buffers are torch CUDA tensors, so no extra CUDA Python package is needed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from fastreid.utils.errors import BadInputError

from .atomic import atomic_path
from .dependencies import require

__all__ = [
    "NoCudaDeviceError",
    "TensorRTRunner",
    "build_engine",
    "make_calibrator",
    "require_tensorrt",
    "tensorrt_available",
]

logger = logging.getLogger(__name__)


def tensorrt_available() -> tuple[bool, str]:
    """``(True, "")`` when TensorRT and a CUDA GPU are usable, else ``(False, reason)``."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, "the tensorrt package is not installed (pip install tensorrt)"
    if not torch.cuda.is_available():
        return False, "no CUDA GPU is available"
    return True, ""


class NoCudaDeviceError(BadInputError):
    """TensorRT is installed but no CUDA GPU is visible."""


def require_tensorrt(purpose: str = "TensorRT export"):
    """The ``tensorrt`` module, or one clear error (exit code 2 in the tools): a
    :class:`MissingDependencyError` naming what to install, or :class:`NoCudaDeviceError`."""
    trt = require("tensorrt", purpose)
    if not torch.cuda.is_available():
        raise NoCudaDeviceError(
            f"{purpose} needs an NVIDIA GPU with CUDA, and torch sees none "
            "(torch.cuda.is_available() is False); use ONNX or TorchScript on this machine."
        )
    return trt


def make_calibrator(
    image_dir: str | os.PathLike,
    input_size: Sequence[int],
    batch_size: int,
    cache_file: str | os.PathLike,
    max_images: int = 512,
) -> Any:
    """An ``IInt8EntropyCalibrator2`` over the images in ``image_dir`` (with a cache file).

    An existing cache is reused, so calibration runs once per model and image set.
    """
    trt = require_tensorrt()
    from .verify import list_images

    files = [str(p) for p in list_images(image_dir)][:max_images]

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.position = 0
            self.device_batch = torch.empty(
                batch_size, 3, int(input_size[0]), int(input_size[1]), device="cuda"
            )

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> Optional[list[int]]:
            from fastreid.predictor import preprocess_images

            if self.position + batch_size > len(files):
                return None
            batch = preprocess_images(files[self.position : self.position + batch_size], input_size)
            self.position += batch_size
            self.device_batch.copy_(batch)
            return [int(self.device_batch.data_ptr())]

        def read_calibration_cache(self) -> Optional[bytes]:
            path = Path(cache_file)
            return path.read_bytes() if path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            with atomic_path(cache_file) as tmp:
                tmp.write_bytes(bytes(cache))

    if len(files) < batch_size:
        raise ValueError(
            f"INT8 calibration needs at least {batch_size} images in '{image_dir}', "
            f"found {len(files)}."
        )
    return EntropyCalibrator()


def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    input_size: Sequence[int],
    mode: str = "fp32",
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 64,
    workspace_gb: float = 4.0,
    calibration_dir: Optional[str | os.PathLike] = None,
    calibration_cache: Optional[str | os.PathLike] = None,
    calibration_batch: int = 8,
) -> Path:
    """Parse ``onnx_path`` and write a serialized TensorRT engine to ``engine_path``.

    Args:
        mode: ``fp32``, ``fp16`` or ``int8`` (int8 needs ``calibration_dir``).
        min_batch / opt_batch / max_batch: the dynamic batch optimisation profile.
    """
    trt = require_tensorrt()
    if mode not in ("fp32", "fp16", "int8"):
        raise ValueError(f"Unknown --mode '{mode}'; use fp32, fp16 or int8.")
    if not Path(onnx_path).is_file():
        raise FileNotFoundError(f"ONNX model '{onnx_path}' does not exist (run onnx_export.py).")
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse '{onnx_path}': {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    height, width = int(input_size[0]), int(input_size[1])
    profile = builder.create_optimization_profile()
    input_name = network.get_input(0).name
    profile.set_shape(
        input_name,
        (min_batch, 3, height, width),
        (opt_batch, 3, height, width),
        (max_batch, 3, height, width),
    )
    config.add_optimization_profile(profile)
    if mode in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if mode == "int8":
        if calibration_dir is None:
            raise ValueError("--mode int8 needs --calib-images DIR (a folder of images).")
        config.set_flag(trt.BuilderFlag.INT8)
        cache = calibration_cache or Path(engine_path).with_suffix(".calib.cache")
        config.int8_calibrator = make_calibrator(
            calibration_dir, input_size, calibration_batch, cache
        )
        calib_profile = builder.create_optimization_profile()
        shape = (calibration_batch, 3, height, width)
        calib_profile.set_shape(input_name, shape, shape, shape)
        config.set_calibration_profile(calib_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the TensorRT log above).")
    engine_path = Path(engine_path)
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    logger.info("Wrote %s (%s)", engine_path, mode)
    return engine_path


class TensorRTRunner:
    """Run a serialized engine: ``runner(images) -> features`` (numpy in and out)."""

    def __init__(self, engine_path: str | os.PathLike) -> None:
        trt = require_tensorrt()
        if not Path(engine_path).is_file():
            raise FileNotFoundError(f"Engine '{engine_path}' does not exist (run trt_export.py).")
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"Could not deserialize '{engine_path}' (TensorRT version?).")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {name: self.engine.get_tensor_mode(name) for name in names}
        self.input_name = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(B, 3, H, W)`` float32 0-255 RGB -> raw features ``(B, D)``."""
        inputs = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).cuda()
        self.context.set_input_shape(self.input_name, tuple(inputs.shape))
        shape = tuple(self.context.get_tensor_shape(self.output_name))
        outputs = torch.empty(shape, dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(self.input_name, int(inputs.data_ptr()))
        self.context.set_tensor_address(self.output_name, int(outputs.data_ptr()))
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed.")
        stream.synchronize()
        return outputs.cpu().numpy()
