"""Progress bars that follow ``FASTREID_PROGRESS`` and the terminal.

A bar shows on the main process when stderr is a terminal; ``FASTREID_PROGRESS=0`` hides
every bar, ``FASTREID_PROGRESS=1`` forces them (e.g. under a pager that is no terminal).
Training (:class:`fastreid.engine.hooks.ProgressBar`), inference on a test set and feature
extraction use the same rule.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Optional, TypeVar

from . import comm

__all__ = ["PROGRESS_ENV", "progress_bar", "progress_bar_enabled"]

PROGRESS_ENV = "FASTREID_PROGRESS"

T = TypeVar("T")


def progress_bar_enabled() -> bool:
    """Whether a progress bar should show here (see the module docstring)."""
    setting = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if not comm.is_main_process():
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    return sys.stderr.isatty()


def progress_bar(iterable: Iterable[T], total: Optional[int] = None, desc: str = "") -> Iterable[T]:
    """``iterable`` wrapped in a tqdm bar on stderr when :func:`progress_bar_enabled`, else
    ``iterable`` itself."""
    if not progress_bar_enabled():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)
