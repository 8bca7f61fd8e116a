"""TorchScript export: traced, frozen, any batch."""

import logging

import pytest
import torch

from fastreid.export.torchscript import TorchScriptRunner, export_torchscript

from .helpers import SIZE, ToyReID, assert_matches, build_recipe, recipe_size


def test_toy_model_matches_for_batches_1_and_7(tmp_path):
    model = ToyReID().eval()
    path = export_torchscript(model, tmp_path / "toy.pt", SIZE)
    assert_matches(model, TorchScriptRunner(path, optimize=False))


def test_demo_recipe_exports(tmp_path):
    model = build_recipe("demo")
    size = recipe_size("demo")
    path = export_torchscript(model, tmp_path / "demo.pt", size)
    assert_matches(model, TorchScriptRunner(path), size=size)


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [
        "bot_R50",
        "bot_R50-ibn",
        "agw_R50",
        "agw_R50-ibn",
        "sbs_R50",
        "sbs_R50-ibn",
        "mgn_R50",
        "mgn_R50-ibn",
    ],
)
def test_r50_recipes_export(tmp_path, recipe):
    model = build_recipe(recipe)
    size = recipe_size(recipe)
    path = export_torchscript(model, tmp_path / f"{recipe}.pt", size)
    assert_matches(model, TorchScriptRunner(path), size=size)  # optimised, as the tools run it


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="torchscript_export.py"):
        TorchScriptRunner(tmp_path / "missing.pt")


def test_gem_models_get_the_inference_pass_without_a_fallback(tmp_path, caplog):
    # ToyReID has a learnable-exponent GeM (SBS's); its clamp used to break the pass.
    model = ToyReID().eval()
    path = export_torchscript(model, tmp_path / "toy.pt", SIZE)
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        runner = TorchScriptRunner(path)
    assert caplog.records == []
    assert_matches(model, runner)


def test_failing_inference_pass_falls_back_with_one_warning_line(tmp_path, caplog, monkeypatch):
    model = ToyReID().eval()
    path = export_torchscript(model, tmp_path / "toy.pt", SIZE)

    def broken(module):
        raise RuntimeError('0 INTERNAL ASSERT FAILED at "ivalue.h":544\nexpected double')

    monkeypatch.setattr(torch.jit, "optimize_for_inference", broken)
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        runner = TorchScriptRunner(path)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "\n" not in message and "expected double" in message and "unoptimised" in message
    assert_matches(model, runner)
