"""The CUDA suite (``make gpu-test``; pytest marker ``cuda``): every CUDA path, small shapes.

Without a GPU every test here is skipped. ``FASTREID_GPU_TESTS_ON_CPU=1`` runs the same tests
on the CPU instead (the float16 cases, which need CUDA, still skip): it checks the tests' own
code where no GPU is at hand, and proves nothing about CUDA.
"""

from __future__ import annotations

import os

# cuBLAS picks reproducible algorithms only with a fixed workspace; read at CUDA start-up.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.engine.conftest import synthetic_root, tiny_config  # noqa: E402,F401

ON_CPU = os.environ.get("FASTREID_GPU_TESTS_ON_CPU") == "1"
DEVICE = "cuda" if torch.cuda.is_available() else ("cpu" if ON_CPU else None)

needs_cuda = pytest.mark.skipif(
    DEVICE is None, reason="no CUDA device (FASTREID_GPU_TESTS_ON_CPU=1 runs these on the CPU)"
)
fp16_needs_cuda = pytest.mark.skipif(DEVICE != "cuda", reason="float16 autocast needs CUDA")


@pytest.fixture
def device() -> str:
    assert DEVICE is not None
    return DEVICE


@pytest.fixture
def deterministic():
    """Reproducible CUDA kernels (no TF32, no autotuning) for equality checks."""
    saved = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
    )
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
    ) = saved
