"""Optional packages, imported with a one-line error that names the fastreid extra to install.

fastreid's extras (``pyproject.toml``) are installed from a clone, e.g.
``pip install -e ".[deploy]" -c constraints.txt``; ``pip install "fastreid[deploy]"`` would
fetch an unrelated PyPI package of that name. Every optional import goes through
:func:`require`, so a missing package reads the same everywhere::

    ort = require("onnxruntime", "ONNX Runtime inference")
    # MissingDependencyError: ONNX Runtime inference needs the Python package 'onnxruntime'
    # (fastreid's 'deploy' extra), which is not installed: from the fastreid folder run
    # pip install -e ".[deploy]" -c constraints.txt (or pip install onnxruntime).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Dict, Optional, Tuple

__all__ = ["EXTRAS", "MissingDependencyError", "install_hint", "require"]


class MissingDependencyError(ImportError):
    """An optional package is not installed; the message names the extra that brings it."""


# Top-level module -> (fastreid extra or None, what pip installs on its own).
EXTRAS: Dict[str, Tuple[Optional[str], str]] = {
    "onnx": ("deploy", "onnx"),
    "onnxruntime": ("deploy", "onnxruntime, or onnxruntime-gpu on CUDA machines"),
    "onnxsim": ("deploy", "onnxsim"),
    "onnxscript": ("deploy", "onnxscript"),
    "google": ("deploy", "protobuf"),
    "cv2": ("deploy", '"opencv-python-headless<5"; OpenCV 5 has no Caffe importer'),
    "faiss": ("faiss", "faiss-cpu, or faiss-gpu"),
    "ray": ("tune", '"ray[tune]"'),
    "hpbandster": ("tune", "hpbandster"),
    "ConfigSpace": ("tune", "ConfigSpace"),
    "optuna": ("tune", "optuna"),
    "hyperopt": ("tune", "hyperopt"),
    "sklearn": ("dev", "scikit-learn"),
    "blosc": ("face", "blosc"),
    "tensorrt": (None, "tensorrt; it needs an NVIDIA GPU and driver"),
}


def install_hint(module: str) -> str:
    """How to install what ``module`` belongs to, as a phrase ending without a period."""
    extra, package = EXTRAS.get(module.split(".")[0], (None, module.split(".")[0]))
    if extra is None:
        return f"pip install {package}"
    return (
        f'from the fastreid folder run pip install -e ".[{extra}]" -c constraints.txt '
        f"(or pip install {package})"
    )


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    Args:
        module: importable name, e.g. ``"onnxruntime"`` or ``"ray.tune"``.
        purpose: what the caller wanted to do, used in the message ("ONNX export").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS.get(top, (None, top))[0]
        which = f" (fastreid's '{extra}' extra)" if extra else ""
        missing = getattr(exc, "name", None)
        cause = f"; importing it failed on '{missing}'" if missing and missing != module else ""
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module}'{which}, which is not installed"
            f"{cause}: {install_hint(module)}."
        ) from exc
