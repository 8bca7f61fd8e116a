"""Entry points of the ``fastreid-*`` console scripts that run the command-line tools.

The tools live in the repository's ``tools/`` folder, installed as ``fastreid.tools``;
each script below runs one of them exactly as ``python tools/<path>.py`` does (same options,
bad input as one ``error:`` line and exit code 2). ``fastreid-train`` and ``fastreid-eval``
are in :mod:`fastreid.engine.cli`.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = [
    "export_caffe",
    "export_onnx",
    "export_torchscript",
    "export_trt",
    "extract_features",
    "infer_caffe",
    "infer_onnx",
    "infer_torchscript",
    "infer_trt",
    "visualize_result",
]


def _tool(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"fastreid.tools.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("fastreid.tools", f"fastreid.tools.{name}"):
            raise
        raise SystemExit(
            f"error: the fastreid command-line tools are not installed (fastreid.tools.{name}); "
            "reinstall fastreid (pip install . or pip install -e . from a clone), or run "
            f"python tools/{name.replace('.', '/')}.py from a clone."
        ) from None


def _run_export_cli(name: str) -> None:
    from fastreid.export.cli import run_cli

    run_cli(_tool(name).main)


def export_onnx() -> None:
    """``fastreid-export-onnx``: ``tools/deploy/onnx_export.py``."""
    _run_export_cli("deploy.onnx_export")


def export_torchscript() -> None:
    """``fastreid-export-torchscript``: ``tools/deploy/torchscript_export.py``."""
    _run_export_cli("deploy.torchscript_export")


def export_caffe() -> None:
    """``fastreid-export-caffe``: ``tools/deploy/caffe_export.py``."""
    _run_export_cli("deploy.caffe_export")


def export_trt() -> None:
    """``fastreid-export-trt``: ``tools/deploy/trt_export.py``."""
    _run_export_cli("deploy.trt_export")


def infer_onnx() -> None:
    """``fastreid-infer-onnx``: ``tools/deploy/onnx_inference.py``."""
    _run_export_cli("deploy.onnx_inference")


def infer_torchscript() -> None:
    """``fastreid-infer-torchscript``: ``tools/deploy/torchscript_inference.py``."""
    _run_export_cli("deploy.torchscript_inference")


def infer_caffe() -> None:
    """``fastreid-infer-caffe``: ``tools/deploy/caffe_inference.py``."""
    _run_export_cli("deploy.caffe_inference")


def infer_trt() -> None:
    """``fastreid-infer-trt``: ``tools/deploy/trt_inference.py``."""
    _run_export_cli("deploy.trt_inference")


def extract_features() -> None:
    """``fastreid-extract``: ``tools/extract_features.py``."""
    _run_export_cli("extract_features")


def visualize_result() -> None:
    """``fastreid-visualize``: ``tools/visualize_result.py``."""
    from fastreid.utils.errors import exit_on_bad_input

    sys.exit(exit_on_bad_input(_tool("visualize_result").main))
