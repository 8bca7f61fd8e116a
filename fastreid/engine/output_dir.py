"""Guarding OUTPUT_DIR: one live run per folder, and no silent overwrite of a finished run.

* A run holds ``OUTPUT_DIR/run.lock`` (its pid and host) while it runs. A second run into
  the same folder is refused while that process lives; a lock left by a process that no
  longer exists (killed) is taken over with a warning.
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
    try:
        with open(path, encoding="utf-8") as f:
            pid, host = f.read().split()[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None  # unreadable or half-written: treated as stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def acquire_output_dir(output_dir: str) -> str:
    """Take ``output_dir``'s lock for this process (re-entrant); returns the lock's path.

    Raises:
        OutputDirBusyError: a live process (on this host, or on another host sharing the
            folder) holds it.
    """
    path = os.path.join(output_dir, LOCK_NAME)
    content = f"{os.getpid()} {socket.gethostname()}\n"
    if _held.get(path) == content:
        return path
    for _ in range(3):  # another process may take a stale lock at the same moment
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(path)
            if owner is not None:
                pid, host = owner
                if (pid, host) == (os.getpid(), socket.gethostname()):
                    break  # ours (e.g. taken before a fork)
                if host != socket.gethostname() or _alive(pid):
                    raise OutputDirBusyError(
                        f"OUTPUT_DIR '{output_dir}' is in use by a running process (pid {pid} "
                        f"on {host}, see {path}): two runs in one folder would mix their logs, "
                        "metrics and checkpoints. Set OUTPUT_DIR to another folder, or wait "
                        f"for that run to end (delete {path} only if no run uses the folder)."
                    ) from None
                logger.warning(
                    f"Taking over the lock of OUTPUT_DIR '{output_dir}' left by process {pid}, "
                    "which is no longer running."
                )
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        break
    else:
        raise OutputDirBusyError(
            f"Could not take the lock {path} of OUTPUT_DIR '{output_dir}': other processes "
            "keep taking it. Set OUTPUT_DIR to a folder no other run uses."
        )
    _held[path] = content
    return path


def release_output_dir(output_dir: Optional[str] = None) -> None:
    """Remove the lock(s) this process holds (all of them when ``output_dir`` is None)."""
    for path, content in list(_held.items()):
        if output_dir is not None and path != os.path.join(output_dir, LOCK_NAME):
            continue
        try:
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
