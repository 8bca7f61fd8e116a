"""Model export (ONNX, TorchScript, Caffe, TensorRT), each verified against PyTorch.

Every format shares :mod:`fastreid.export.verify`; optional packages of the ``[deploy]``
extra are imported lazily, with an error naming the package to install.
"""

from .dependencies import MissingDependencyError, require
from .verify import ExportVerificationError, VerificationResult, verify_export

__all__ = [
    "ExportVerificationError",
    "MissingDependencyError",
    "VerificationResult",
    "require",
    "verify_export",
]
