"""Whole folders written in one step: a finished folder replaces the old one, a failed one
leaves it as it was and nothing behind."""

from __future__ import annotations

import os

import pytest

from fastreid.utils.file_io import atomic_folder


def test_a_finished_folder_replaces_the_earlier_one(tmp_path):
    target = tmp_path / "set"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_folder(str(target)) as work:
        assert os.path.dirname(work) == str(tmp_path) and not os.path.exists(target / "new.txt")
        with open(os.path.join(work, "new.txt"), "w") as f:
            f.write("new")
    assert sorted(os.listdir(target)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["set"]  # no temporary folder left


def test_a_failed_folder_leaves_the_earlier_one_and_nothing_else(tmp_path):
    target = tmp_path / "set"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="stopped"):
        with atomic_folder(str(target)) as work:
            with open(os.path.join(work, "half.txt"), "w") as f:
                f.write("half")
            raise RuntimeError("stopped")
    assert sorted(os.listdir(target)) == ["old.txt"]
    assert sorted(os.listdir(tmp_path)) == ["set"]
