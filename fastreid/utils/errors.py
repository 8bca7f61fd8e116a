"""How command-line tools report bad input: one line that names the fix, exit code 2.

Errors caused by the user's input (a wrong config key or value, a missing file or dataset
folder, an unknown registry name, a corrupt image, a missing optional package) are raised as
``KeyError`` / ``ValueError`` / ``OSError`` / ``ImportError`` or as a :class:`BadInputError`
with a message that says what to change. :func:`exit_on_bad_input` prints that message
without the traceback; set ``FASTREID_DEBUG=1`` to get the traceback as well. Any other
exception is a bug and keeps its full traceback.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, TypeVar

__all__ = [
    "BAD_INPUT_ERRORS",
    "DEBUG_ENV",
    "EXIT_BAD_INPUT",
    "BadInputError",
    "describe_error",
    "exit_on_bad_input",
]

DEBUG_ENV = "FASTREID_DEBUG"
EXIT_BAD_INPUT = 2

T = TypeVar("T")


class BadInputError(Exception):
    """Base of fastreid errors about the user's input that are not a KeyError/ValueError/OSError
    (e.g. :class:`fastreid.data.CorruptImageError`)."""


BAD_INPUT_ERRORS = (BadInputError, KeyError, ValueError, OSError, ImportError)

# A DataLoader worker re-raises its exception with the worker's traceback in the message.
_WORKER_TRACEBACK = "Original Traceback"
_EXCEPTION_PREFIX = re.compile(r"^[\w.]+(Error|Exception): ")


def describe_error(exc: BaseException) -> str:
    """The message of ``exc`` as one would want to read it: no quotes around a KeyError's
    message, no DataLoader-worker traceback."""
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    else:
        text = str(exc)
    if _WORKER_TRACEBACK in text:
        last = text.rstrip().splitlines()[-1]
        text = _EXCEPTION_PREFIX.sub("", last)
    return text or type(exc).__name__


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def exit_on_bad_input(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``func``; on bad input print ``error: <message>`` to stderr and exit with code 2.

    With ``FASTREID_DEBUG=1`` the exception propagates with its traceback. When ``func``
    started worker processes (``launch``) and one of them exited with code 2, it has printed
    its message already; this process then exits with code 2 too.
    """
    try:
        return func(*args, **kwargs)
    except BAD_INPUT_ERRORS as exc:
        if _debug():
            raise
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        print(f"(set {DEBUG_ENV}=1 for the full traceback)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    except Exception as exc:
        if getattr(exc, "exit_code", None) == EXIT_BAD_INPUT and _is_worker_exit(exc):
            raise SystemExit(EXIT_BAD_INPUT) from None
        raise


def _is_worker_exit(exc: Exception) -> bool:
    from torch.multiprocessing import ProcessExitedException

    return isinstance(exc, ProcessExitedException)
