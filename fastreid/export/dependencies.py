"""Optional packages of the ``[deploy]`` extra, imported with an error that names the fix."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(ImportError):
    """An optional package needed by an export format is not installed."""


_INSTALL_HINTS = {
    "onnx": 'pip install "fastreid[deploy]"',
    "onnxruntime": 'pip install "fastreid[deploy]" (or onnxruntime-gpu on CUDA machines)',
    "onnxsim": 'pip install "fastreid[deploy]"',
    "google.protobuf": 'pip install "fastreid[deploy]"',
    "cv2": 'pip install "fastreid[deploy]" (opencv-python-headless)',
    "tensorrt": (
        "pip install tensorrt (NVIDIA's TensorRT 10 wheels; needs an NVIDIA GPU and driver), "
        "or export with onnx_export.py / torchscript_export.py instead"
    ),
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install.

    Args:
        module: importable name, e.g. ``"onnxruntime"``.
        purpose: what the caller wanted to do, used in the message ("ONNX export").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(module, 'pip install "fastreid[deploy]"')
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module}', which is not installed: {hint}."
        ) from exc
