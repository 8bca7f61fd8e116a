"""Checkpointer: atomic saves, last_checkpoint, weights loading with reports and errors."""

from __future__ import annotations

import argparse
import logging
import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.utils.checkpoint import Checkpointer

from .conftest import RECIPE


def _model(num_classes: int = 8, depth: str = "18x") -> torch.nn.Module:
    cfg = get_cfg()
    cfg.merge_from_file(RECIPE)
    cfg.MODEL.HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.BACKBONE.DEPTH = depth
    cfg.MODEL.BACKBONE.FEAT_DIM = 512 if depth in ("18x", "34x") else 2048
    return build_model(cfg)


@pytest.fixture(scope="module")
def r18():
    return _model()


def test_save_writes_atomically_and_points_last_checkpoint_at_the_file(r18, tmp_path, monkeypatch):
    optimizer = torch.optim.SGD(r18.parameters(), lr=0.1)
    checkpointer = Checkpointer(r18, str(tmp_path), save_to_disk=True, optimizer=optimizer)
    path = checkpointer.save("model_0000", epoch=0, iteration=2)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000.pth"
    assert checkpointer.get_checkpoint_file() == path
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 0 and "optimizer" in saved and "model" in saved

    # A crash in the middle of writing leaves the previous file and pointer untouched.
    good = open(path, "rb").read()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpointer.save("model_0000", epoch=1)
    assert open(path, "rb").read() == good
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000.pth"]


class _Capture(logging.Handler):
    """Collects log text (the fastreid logger does not propagate to pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += record.getMessage() + "\n"


def test_weights_with_module_prefix_and_another_class_count_load_with_a_report(r18, tmp_path):
    source = _model(num_classes=10)
    state = {"module." + k: v for k, v in source.state_dict().items()}
    torch.save({"model": state}, tmp_path / "ddp.pth")
    target = _model(num_classes=8)
    classifier_before = {
        k: v.clone() for k, v in target.state_dict().items() if v.shape[:1] == (8,)
    }

    capture = _Capture()
    logger = logging.getLogger("fastreid.utils.checkpoint")
    logger.addHandler(capture)
    try:
        Checkpointer(target).load(str(tmp_path / "ddp.pth"))
    finally:
        logger.removeHandler(capture)

    mismatched = list(classifier_before)
    assert mismatched, "the head should hold a tensor sized by the class count"
    for key in mismatched:
        assert key in capture.text and "shape mismatch (skipped)" in capture.text
        assert torch.equal(target.state_dict()[key], classifier_before[key])  # skipped, kept
    assert "(10, 512)" in capture.text and "(8, 512)" in capture.text
    for key, value in source.state_dict().items():
        if key not in mismatched:
            assert torch.equal(target.state_dict()[key], value), key


def test_a_missing_weights_file_is_one_clear_error(r18, tmp_path):
    with pytest.raises(FileNotFoundError, match="MODEL.WEIGHTS"):
        Checkpointer(r18).load(str(tmp_path / "nope.pth"))


def test_a_checkpoint_of_another_architecture_is_one_clear_error(r18, tmp_path):
    torch.save({"model": _model(depth="50x").state_dict()}, tmp_path / "r50.pth")
    with pytest.raises(ValueError, match="another architecture"):
        Checkpointer(r18).load(str(tmp_path / "r50.pth"))


def test_loading_refuses_pickled_code(r18, tmp_path):
    torch.save(
        {"model": r18.state_dict(), "args": argparse.Namespace(lr=0.1)}, tmp_path / "unsafe.pth"
    )
    with pytest.raises(RuntimeError, match="weights_only"):
        Checkpointer(r18).load(str(tmp_path / "unsafe.pth"))


def test_inference_sizes_the_classifier_like_the_checkpoint(r18, tmp_path, caplog):
    from fastreid.modeling.compat import num_classes_in_checkpoint
    from fastreid.predictor import build_model_from_config

    Checkpointer(r18, save_dir=str(tmp_path)).save("trained")
    weights = str(tmp_path / "trained.pth")
    assert num_classes_in_checkpoint(weights) == 8
    # A bare state dict (as FastReID users often keep) tells it through the classifier rows.
    torch.save(r18.state_dict(), tmp_path / "bare.pth")
    assert num_classes_in_checkpoint(str(tmp_path / "bare.pth")) == 8

    with caplog.at_level(logging.WARNING):
        model = build_model_from_config(
            RECIPE, weights=weights, opts=["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "0"]
        )
    assert model.heads.weight.shape[0] == 8
    assert "shape mismatch" not in caplog.text
