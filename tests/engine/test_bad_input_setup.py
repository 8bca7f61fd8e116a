"""Bad input, devices, output folders, optional packages and the output folder lock."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from fastreid.engine.setup import default_setup
from fastreid.export.dependencies import MissingDependencyError, require
from fastreid.utils.env import resolve_device
from fastreid.utils.file_io import ensure_dir

from ..bad_input import error_line, small_cfg

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


# -- devices and output folders --------------------------------------------------------------
def test_cuda_device_without_a_gpu_falls_back_to_cpu_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        assert resolve_device("cuda") == torch.device("cpu")
    assert "MODEL.DEVICE cpu" in caplog.text
    with pytest.raises(ValueError, match=r"MODEL\.DEVICE 'gpu0' is not a device name"):
        resolve_device("gpu0")


def test_output_dir_under_a_file_names_output_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cfg = small_cfg("OUTPUT_DIR", str(blocker / "run"))
    with pytest.raises(NotADirectoryError, match=rf"OUTPUT_DIR '{blocker / 'run'}'"):
        default_setup(cfg)


def test_output_dir_that_is_not_writable_names_the_folder(tmp_path, monkeypatch):
    # Tests may run as root, who can write anywhere; pretend the folder is read-only.
    folder = tmp_path / "read_only"
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(folder) else real_access(p, mode)
    )
    with pytest.raises(PermissionError, match=rf"OUTPUT_DIR '{folder}' is not writable"):
        ensure_dir(str(folder), what="OUTPUT_DIR")


def test_missing_optional_package_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"'onnxruntime'.*pip install"):
        require("onnxruntime", "ONNX Runtime inference")


def _setup_args(**flags):
    import argparse

    return argparse.Namespace(
        config_file="", resume=False, eval_only=False, overwrite=False, opts=[], **flags
    )


def test_output_dir_of_a_live_run_is_refused(tmp_path, capsys):
    import socket

    from fastreid.engine.output_dir import LOCK_NAME

    (tmp_path / LOCK_NAME).write_text(f"{os.getppid()} {socket.gethostname()}\n")
    cfg = small_cfg("OUTPUT_DIR", str(tmp_path))
    line = error_line(capsys, default_setup, cfg, _setup_args())
    assert f"OUTPUT_DIR '{tmp_path}' is in use by a running process (pid {os.getppid()}" in line
    assert not (tmp_path / "config.yaml").exists()


def test_stale_lock_of_a_dead_run_is_taken_over(tmp_path, caplog):
    import socket

    from fastreid.engine.output_dir import LOCK_NAME, release_output_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()}\n")
    with caplog.at_level(logging.WARNING):
        default_setup(small_cfg("OUTPUT_DIR", str(tmp_path)), _setup_args())
    assert f"left by process {dead.pid}, which is no longer running" in caplog.text
    assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    release_output_dir(str(tmp_path))
    assert not (tmp_path / LOCK_NAME).exists()


def test_finished_run_is_not_overwritten_without_resume_or_overwrite(tmp_path, capsys):
    from fastreid.engine.output_dir import release_output_dir

    (tmp_path / "model_final.pth").write_bytes(b"trained weights")
    (tmp_path / "model_best.pth").write_bytes(b"best weights")
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    cfg = small_cfg("OUTPUT_DIR", str(tmp_path))
    line = error_line(capsys, default_setup, cfg, _setup_args())
    assert "holds a finished run" in line and "--resume" in line and "--overwrite" in line
    assert (tmp_path / "model_final.pth").read_bytes() == b"trained weights"
    # --resume continues it; --overwrite starts anew (the old resume pointer goes).
    default_setup(small_cfg("OUTPUT_DIR", str(tmp_path)), _resume())
    release_output_dir(str(tmp_path))
    default_setup(small_cfg("OUTPUT_DIR", str(tmp_path)), _overwrite())
    release_output_dir(str(tmp_path))
    assert not (tmp_path / "last_checkpoint").exists()
    # Evaluating into it is fine.
    default_setup(small_cfg("OUTPUT_DIR", str(tmp_path)), _eval_only())
    release_output_dir(str(tmp_path))


def _resume():
    args = _setup_args()
    args.resume = True
    return args


def _overwrite():
    args = _setup_args()
    args.overwrite = True
    return args


def _eval_only():
    args = _setup_args()
    args.eval_only = True
    return args
