"""ONNX export: dynamic batch through ONNX Runtime and OpenCV dnn, recipes, errors."""

import builtins

import pytest

from fastreid.export.dependencies import MissingDependencyError
from fastreid.export.onnx import ONNXRuntimeRunner, OpenCVONNXRunner, export_onnx

from .helpers import SIZE, ToyReID, assert_matches, build_recipe, recipe_size

pytest.importorskip("onnxruntime")


def test_toy_model_matches_in_onnxruntime_for_batches_1_and_7(tmp_path):
    model = ToyReID().eval()
    path = export_onnx(model, tmp_path / "toy.onnx", SIZE)
    assert_matches(model, ONNXRuntimeRunner(path, num_threads=1))


def test_onnxruntime_runner_names_the_input_size_it_needs(tmp_path):
    import numpy as np

    path = export_onnx(ToyReID().eval(), tmp_path / "toy.onnx", SIZE)
    runner = ONNXRuntimeRunner(path, num_threads=1)
    assert runner.input_size == SIZE
    with pytest.raises(ValueError, match=rf"takes {SIZE[0]}x{SIZE[1]} images .* but got 32x16"):
        runner(np.zeros((1, 3, 32, 16), dtype=np.float32))


def test_opencv_dnn_loads_the_onnx_file(tmp_path):
    pytest.importorskip("cv2")
    model = ToyReID().eval()
    path = export_onnx(model, tmp_path / "toy.onnx", SIZE)
    runner = OpenCVONNXRunner(path)
    assert runner.input_size == SIZE  # read from the file: the inference tool's default size
    assert_matches(model, runner)


def test_demo_recipe_exports_with_dynamic_batch(tmp_path):
    model = build_recipe("demo")
    size = recipe_size("demo")
    path = export_onnx(model, tmp_path / "demo.onnx", size)
    assert_matches(model, ONNXRuntimeRunner(path, num_threads=1), size=size)


def test_mgn_r50_exports(tmp_path):
    model = build_recipe("mgn_R50")
    size = recipe_size("mgn_R50")
    path = export_onnx(model, tmp_path / "mgn.onnx", size, simplify=False)
    assert_matches(model, ONNXRuntimeRunner(path, num_threads=1), size=size)


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    ["bot_R50", "bot_R50-ibn", "agw_R50", "agw_R50-ibn", "sbs_R50", "sbs_R50-ibn", "mgn_R50-ibn"],
)
def test_r50_recipes_export(tmp_path, recipe):
    model = build_recipe(recipe)
    size = recipe_size(recipe)
    path = export_onnx(model, tmp_path / f"{recipe}.onnx", size, simplify=False)
    assert_matches(model, ONNXRuntimeRunner(path, num_threads=1), size=size)


def test_missing_onnx_package_names_the_deploy_extra(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(__import__("sys").modules, "onnx", raising=False)
    with pytest.raises(MissingDependencyError, match=r"'deploy' extra.*\.\[deploy\]"):
        export_onnx(ToyReID().eval(), tmp_path / "toy.onnx", SIZE)
    assert not (tmp_path / "toy.onnx").exists()


def test_failed_export_leaves_no_file(tmp_path):
    class Broken(ToyReID):
        def forward(self, images):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        export_onnx(Broken().eval(), tmp_path / "broken.onnx", SIZE)
    assert list(tmp_path.iterdir()) == []
