"""Bad input, checkpoints: missing, foreign or half-written files; failed and interrupted saves."""

from __future__ import annotations

import logging

import pytest
import torch

from fastreid.modeling import build_model
from fastreid.utils.checkpoint import Checkpointer

from ..bad_input import (
    error_line,
    small_cfg,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


# -- checkpoints -----------------------------------------------------------------------------


def test_missing_weights_file_names_the_path_and_model_weights(r18_model, tmp_path):
    missing = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*MODEL\.WEIGHTS"):
        Checkpointer(r18_model).load(missing)


def test_weights_file_that_is_text_says_it_is_not_a_checkpoint(r18_model, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello\n")
    with pytest.raises(RuntimeError, match=rf"{text}.*not a PyTorch checkpoint"):
        Checkpointer(r18_model).load(str(text))


def test_r50_checkpoint_into_r18_says_it_is_another_architecture(r18_model, tmp_path):
    r50 = build_model(
        small_cfg("MODEL.BACKBONE.DEPTH", "50x", "MODEL.BACKBONE.FEAT_DIM", "2048",
             "MODEL.HEADS.NUM_CLASSES", "4")
    )  # fmt: skip
    path = tmp_path / "r50.pth"
    torch.save({"model": r50.state_dict()}, path)
    with pytest.raises(ValueError, match=r"another architecture.*MODEL\.BACKBONE"):
        Checkpointer(r18_model).load(str(path))


def test_failed_checkpoint_write_names_the_file_and_keeps_older_ones(
    r18_model, tmp_path, monkeypatch, capsys
):
    import errno

    from fastreid.utils import file_io

    checkpointer = Checkpointer(r18_model, str(tmp_path), save_to_disk=True)
    checkpointer.save("model_0000")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_io.os, "fsync", disk_full)
    line = error_line(capsys, checkpointer.save, "model_0001")
    assert f"'{tmp_path / 'model_0001.pth'}'" in line and "No space left" in line
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000.pth"]
    assert checkpointer.get_checkpoint_file().endswith("model_0000.pth")


# -- interrupted saves -----------------------------------------------------------------------
def test_stale_temporary_files_of_interrupted_saves_are_removed(r18_model, tmp_path):
    checkpointer = Checkpointer(r18_model, str(tmp_path), save_to_disk=True)
    checkpointer.save("model_0000")
    stale = tmp_path / ".model_0001.pth.k2j3h4.tmp"
    stale.write_bytes(b"half a checkpoint")
    checkpointer.resume_or_load("", resume=True)
    assert not stale.exists() and (tmp_path / "model_0000.pth").exists()


def test_resume_falls_back_to_the_newest_intact_checkpoint(r18_model, tmp_path, caplog):
    import copy

    model = copy.deepcopy(r18_model)
    checkpointer = Checkpointer(model, str(tmp_path), save_to_disk=True)
    checkpointer.save("model_0000", epoch=0)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    checkpointer.save("model_0001", epoch=1)
    last = tmp_path / "model_0001.pth"
    last.write_bytes(last.read_bytes()[:1000])  # killed while the disk was flushing
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    with caplog.at_level(logging.WARNING):
        extra = checkpointer.resume_or_load("", resume=True)
    assert extra["epoch"] == 0
    assert "newest intact checkpoint" in caplog.text and "model_0000.pth" in caplog.text
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, good[key])
