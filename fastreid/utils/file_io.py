"""Atomic file writes: a reader never sees a half-written checkpoint, config or JSON file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import IO, Any, Iterator

import torch

__all__ = ["atomic_open", "atomic_write_text", "atomic_torch_save", "ensure_dir", "save_figure"]


def ensure_dir(path: str, what: str = "folder") -> str:
    """Create ``path`` (and parents) if needed and return it.

    Raises an ``OSError`` (``PermissionError``, ``NotADirectoryError``, ...) that names
    ``what`` (e.g. ``"OUTPUT_DIR"``) and ``path`` when the folder cannot be created or is not
    writable.
    """
    if not path:
        return path
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{what} '{path}' is a file, not a folder; pick another path.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise type(e)(
            f"Cannot create {what} '{path}': {e.strerror or e}; pick a writable location."
        ) from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(
            f"{what} '{path}' is not writable; pick a writable location or change its permissions."
        )
    return path


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` in one step.

    If the body raises, the temporary file is removed and ``path`` is left untouched.
    """
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_open only writes whole files; mode '{mode}' is not supported.")
    directory = os.path.dirname(os.path.abspath(path))
    ensure_dir(directory)
    fd, tmp_path = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
    )
    binary = "b" in mode
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


@contextlib.contextmanager
def atomic_folder(path: str, prefix: str = ".partial-") -> Iterator[str]:
    """A temporary folder next to ``path`` to fill; on success it replaces ``path`` (an
    earlier folder there is removed first). If the body raises, the temporary folder is
    removed and ``path`` is left as it was."""
    parent = os.path.dirname(os.path.abspath(path))
    ensure_dir(parent)
    work = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield work
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(work, path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + ``os.replace``)."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + ``os.replace``)."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def save_figure(fig: Any, path: Any, dpi: int = 100) -> str:
    """Save a matplotlib figure to ``path`` atomically (its folder created; the format from
    the extension, PNG without one) and close the figure. Returns ``str(path)``."""
    import matplotlib.pyplot as plt

    path = str(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    try:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format=fmt, dpi=dpi)
    finally:
        plt.close(fig)
    return path
