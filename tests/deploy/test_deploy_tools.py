"""The command-line tools: export + verification exit codes, inference .npy outputs."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from .helpers import RECIPES, ROOT

pytest.importorskip("onnxruntime")

SMALL = ["INPUT.SIZE_TEST", "[64,32]", "MODEL.DEVICE", "cpu"]


def _run(*args):
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_onnx_export_verifies_and_inference_writes_normalised_features(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (80, 40, 3), dtype=np.uint8)).save(images / f"{i}.jpg")
    result = _run(
        "tools/deploy/onnx_export.py",
        "--config-file",
        RECIPES["demo"],
        "--name",
        "demo",
        "--output",
        tmp_path,
        "--images",
        images,
        "--verify-batch",
        "3",
        "--opts",
        *SMALL,
    )
    assert result.returncode == 0, result.stderr
    assert "min cosine" in result.stdout and "max abs diff" in result.stdout
    out = tmp_path / "feats.npy"
    result = _run(
        "tools/deploy/onnx_inference.py",
        "--model",
        tmp_path / "demo.onnx",
        "--input",
        images,
        "--output",
        out,
        "--height",
        "64",
        "--width",
        "32",
    )
    assert result.returncode == 0, result.stderr
    features = np.load(out)
    assert features.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-5)
    assert len(out.with_suffix(".txt").read_text().split()) == 3
    # Without --height/--width the size is read from the ONNX input (64x32 here, not 256x128).
    own = tmp_path / "own.npy"
    result = _run(
        "tools/deploy/onnx_inference.py", "--model", tmp_path / "demo.onnx", "--input", images,
        "--output", own,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Input size 64x32 (the model's input" in result.stdout
    np.testing.assert_allclose(np.load(own), features, atol=1e-5)
    # The wrong input size is one error line naming the right flags, and writes nothing.
    wrong = tmp_path / "wrong.npy"
    result = _run(
        "tools/deploy/onnx_inference.py", "--model", tmp_path / "demo.onnx", "--input", images,
        "--output", wrong, "--height", "128", "--width", "64",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: The model takes 64x32 images" in result.stderr
    assert "--height 64 --width 32" in result.stderr
    assert not wrong.exists()


def test_missing_weights_exit_with_a_message(tmp_path):
    result = _run(
        "tools/deploy/torchscript_export.py",
        "--config-file",
        RECIPES["demo"],
        "--output",
        tmp_path,
        "--opts",
        *SMALL,
        "MODEL.WEIGHTS",
        tmp_path / "missing.pth",
    )
    assert result.returncode == 2
    assert "MODEL.WEIGHTS" in result.stderr and "does not exist" in result.stderr
    assert not list(tmp_path.glob("*.pt"))


def test_bench_infer_quick_smoke(tmp_path):
    out = tmp_path / "bench.json"
    result = _run("benchmarks/bench_infer.py", "--quick", "--threads", "1", "--output", out)
    assert result.returncode == 0, result.stderr
    assert "ONNX Runtime" in result.stdout and out.is_file()


def test_trt_export_without_tensorrt_is_one_line_and_keeps_the_verified_onnx(tmp_path):
    # tensorrt made unimportable whether or not this machine has it.
    verified = tmp_path / "demo.onnx"
    verified.write_bytes(b"a verified export")
    code = (
        "import runpy, sys; sys.modules['tensorrt'] = None; "
        "sys.argv = ['trt_export.py'] + sys.argv[1:]; "
        "runpy.run_path('tools/deploy/trt_export.py', run_name='__main__')"
    )
    result = _run(
        "-c", code, "--config-file", RECIPES["demo"], "--name", "demo", "--output", tmp_path
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "'tensorrt'" in errors[0] and "pip install tensorrt" in errors[0]
    assert verified.read_bytes() == b"a verified export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.onnx"]
