"""Guarding OUTPUT_DIR: one live run per folder, and no silent overwrite of a finished run.

* A run holds ``OUTPUT_DIR/run.lock`` (its pid and host) while it runs. The file is
  written whole to a temporary name and linked into place, so no run ever reads a
  half-written lock. A second run into the same folder is refused while that process
  lives; a lock left by a process of this host that no longer exists (killed) is taken
  over with a warning; a lock that cannot be read is never taken over.
* Training into a folder that already holds checkpoints (a finished or interrupted run)
  without ``--resume`` is refused, naming ``--resume`` (continue it) and ``--overwrite``
  (start anew and replace its checkpoints).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import tempfile
from typing import Dict, Optional, Tuple

from fastreid.utils.errors import BadInputError

__all__ = [
    "LOCK_NAME",
    "OutputDirBusyError",
    "OutputDirInUseError",
    "acquire_output_dir",
    "check_previous_run",
    "release_output_dir",
]

LOCK_NAME = "run.lock"
logger = logging.getLogger(__name__)
_held: Dict[str, str] = {}  # lock path -> its content, for the locks this process holds


class OutputDirBusyError(BadInputError, RuntimeError):
    """Another live run writes to this OUTPUT_DIR."""


class OutputDirInUseError(BadInputError, RuntimeError):
    """OUTPUT_DIR holds an earlier run's checkpoints and neither --resume nor --overwrite
    was given."""


def _owner(path: str) -> Optional[Tuple[int, str]]:
    """The (pid, host) a lock file names; None when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as f:
            pid, host = f.read().split()[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


@contextlib.contextmanager
def _folder_guard(output_dir: str):
    """Serialise lock decisions between processes of this host: ``flock`` on the folder."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the link below is still atomic
        yield
        return
    fd = os.open(output_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _busy(output_dir: str, path: str, detail: str) -> OutputDirBusyError:
    return OutputDirBusyError(
        f"OUTPUT_DIR '{output_dir}' is in use by {detail}, see {path}): two runs in one "
        "folder would mix their logs, metrics and checkpoints. Set OUTPUT_DIR to another "
        f"folder, or wait for that run to end (delete {path} only if no run uses the folder)."
    )


def acquire_output_dir(output_dir: str) -> str:
    """Take ``output_dir``'s lock for this process (re-entrant); returns the lock's path.

    The lock file appears complete or not at all: its content (pid and host) is written to
    a temporary file that is then hard-linked into place, which fails when a lock exists.
    A lock is stale only when it names a process of this host that no longer runs; a lock
    that cannot be read is never taken over.

    Raises:
        OutputDirBusyError: a live process (on this host, or on another host sharing the
            folder) holds it, or the lock file cannot be read.
    """
    path = os.path.join(output_dir, LOCK_NAME)
    here = socket.gethostname()
    content = f"{os.getpid()} {here}\n"
    if _held.get(path) == content:
        return path
    fd, tmp = tempfile.mkstemp(prefix=f".{LOCK_NAME}.", dir=output_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        with _folder_guard(output_dir):
            try:
                os.link(tmp, path)
            except FileExistsError:
                owner = _owner(path)
                if owner is None:
                    raise _busy(
                        output_dir, path, "a run whose lock file cannot be read (empty or damaged"
                    ) from None
                pid, host = owner
                if (pid, host) != (os.getpid(), here):  # else ours (e.g. taken before a fork)
                    if host != here or _alive(pid):
                        raise _busy(
                            output_dir, path, f"a running process (pid {pid} on {host}"
                        ) from None
                    logger.warning(
                        f"Taking over the lock of OUTPUT_DIR '{output_dir}' left by process "
                        f"{pid}, which is no longer running."
                    )
                    os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    _held[path] = content
    return path


def release_output_dir(output_dir: Optional[str] = None) -> None:
    """Remove the lock(s) this process holds (all of them when ``output_dir`` is None)."""
    for path, content in list(_held.items()):
        if output_dir is not None and path != os.path.join(output_dir, LOCK_NAME):
            continue
        try:
            with _folder_guard(os.path.dirname(path)):
                with open(path, encoding="utf-8") as f:
                    ours = f.read() == content
                if ours:
                    os.remove(path)
        except OSError:
            pass
        _held.pop(path, None)


atexit.register(release_output_dir)

_CHECKPOINT_MARKERS = ("model_final.pth", "model_best.pth", "last_checkpoint")


def check_previous_run(output_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start training anew over an earlier run's checkpoints.

    With ``overwrite`` the earlier run's ``last_checkpoint`` pointer is removed (so a later
    ``--resume`` cannot mix the two runs); its files are replaced as the new run saves.
    """
    found = [name for name in _CHECKPOINT_MARKERS if os.path.exists(os.path.join(output_dir, name))]
    if not found or resume:
        return
    if overwrite:
        logger.warning(
            f"--overwrite: starting anew in '{output_dir}'; the earlier run's checkpoints "
            f"({', '.join(found)}) will be replaced."
        )
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(output_dir, "last_checkpoint"))
        return
    state = "a finished run" if "model_final.pth" in found else "an earlier run"
    raise OutputDirInUseError(
        f"OUTPUT_DIR '{output_dir}' holds {state} ({', '.join(found)}). Pass --resume to "
        "continue it, --overwrite to start anew and replace its checkpoints, or set "
        "OUTPUT_DIR to a new folder."
    )
