"""Every shipped re-ID recipe family exports at its real input size (INPUT.SIZE_TEST of the
YAML: 256x128 for BoT / AGW, 384x128 for SBS / MGN) with the settings the export tools use,
and each exported file reproduces PyTorch's features (the tools' check: cosine >= 0.999 at
the verification batch and at batch 1). Random weights with calibrated BN statistics; one
model per family, exported to every format it supports."""

import logging

import pytest

from fastreid.export.onnx import ONNXRuntimeRunner, export_onnx
from fastreid.export.torchscript import TorchScriptRunner, export_torchscript
from fastreid.export.verify import synthetic_images, verify_export

from .helpers import RECIPES, ROOT, randomize_norms

pytest.importorskip("onnxruntime")

THRESHOLD = 0.999  # export_argument_parser's --threshold default (fp32)


def build_at_real_size(recipe: str):
    from fastreid.predictor import build_model_from_config

    opts = ["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "8"]
    model = build_model_from_config(ROOT / RECIPES[recipe], opts=opts)
    size = tuple(int(v) for v in model.cfg.INPUT.SIZE_TEST)
    return randomize_norms(model, size), size


def check(model, runner, images, label):
    for n in (len(images), 1):
        result = verify_export(model, runner, images[:n], label, threshold=THRESHOLD, repeats=1)
        assert result.passed, result.summary()


def export_every_format(recipe, tmp_path, caplog, expected_size, caffe=False):
    model, size = build_at_real_size(recipe)
    assert size == expected_size
    images = synthetic_images(2, size, seed=1)
    # onnx_export.py: --batch-size 1, dynamic batch, onnxsim when installed.
    onnx_path = export_onnx(model, tmp_path / f"{recipe}.onnx", size, batch_size=1)
    runner = ONNXRuntimeRunner(onnx_path, providers=["CPUExecutionProvider"], num_threads=1)
    assert runner.input_size == size  # what onnx_inference.py uses by default
    check(model, runner, images, "ONNX Runtime")
    # torchscript_export.py: batch 2, frozen; the runner applies optimize_for_inference.
    ts_path = export_torchscript(model, tmp_path / f"{recipe}.pt", size, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        ts_runner = TorchScriptRunner(ts_path, device="cpu")
    assert "optimize_for_inference failed" not in caplog.text
    check(model, ts_runner, images, "TorchScript")
    if caffe:
        from fastreid.export.caffe import caffe_runner, export_caffe, opencv_has_caffe

        prototxt, caffemodel = export_caffe(model, tmp_path, recipe, size)
        backend = "opencv" if opencv_has_caffe() else "reference"
        check(model, caffe_runner(prototxt, caffemodel, backend), images, "Caffe")


@pytest.mark.slow
def test_bagtricks_r50_ibn_exports_onnx_torchscript_caffe_at_256x128(tmp_path, caplog):
    export_every_format("bot_R50-ibn", tmp_path, caplog, (256, 128), caffe=True)


@pytest.mark.slow
def test_agw_r50_exports_onnx_torchscript_at_256x128(tmp_path, caplog):
    export_every_format("agw_R50", tmp_path, caplog, (256, 128))


@pytest.mark.slow
def test_sbs_r50_exports_onnx_and_optimised_torchscript_at_384x128(tmp_path, caplog):
    # The SBS TorchScript used to stop in optimize_for_inference ("expected double").
    export_every_format("sbs_R50", tmp_path, caplog, (384, 128))


@pytest.mark.slow
def test_mgn_r50_ibn_exports_onnx_torchscript_at_384x128(tmp_path, caplog):
    export_every_format("mgn_R50-ibn", tmp_path, caplog, (384, 128))
