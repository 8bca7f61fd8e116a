"""Logging set-up: a console handler and ``log.txt`` in the output folder."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Optional

__all__ = ["PROJECT_LOGGERS", "setup_logger", "log_first_n"]

# Loggers of the projects (``logging.getLogger(__name__)`` in ``projects/*``; the package is
# ``fastreid_projects`` when installed). Setting up the ``fastreid`` logger sets them up too:
# their messages go to the ``fastreid`` logger's console and ``log.txt``.
PROJECT_LOGGERS = ("projects", "fastreid_projects")

_FORMAT = "[%(asctime)s] %(name)s %(levelname)s: %(message)s"
_DATE = "%m/%d %H:%M:%S"


class _ColorFormatter(logging.Formatter):
    """Colors WARNING / ERROR prefixes on a terminal and shortens the logger name."""

    def __init__(self, *args, root_name: str, abbrev_name: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._root_name = root_name + "."
        self._abbrev_name = abbrev_name + "." if abbrev_name else ""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        record.name = record.name.replace(self._root_name, self._abbrev_name)
        message = super().formatMessage(record)
        if record.levelno == logging.WARNING:
            return "\x1b[31mWARNING\x1b[0m " + message
        if record.levelno >= logging.ERROR:
            return "\x1b[31;5mERROR\x1b[0m " + message
        return message


@functools.lru_cache  # the same call twice must not add a second pair of handlers
def setup_logger(
    output: Optional[str] = None,
    distributed_rank: int = 0,
    *,
    color: bool = True,
    name: str = "fastreid",
    abbrev_name: Optional[str] = None,
) -> logging.Logger:
    """Configure the ``name`` logger: console on rank 0, a file on every rank.

    Args:
        output: a folder (the log goes to ``output/log.txt``) or a file path ending in
            ``.txt``/``.log``; ``None`` logs to the console only. Ranks other than 0 write
            ``log.txt.rank{R}``.
        distributed_rank: this process's rank; only rank 0 prints to the console.
        color: colored level names when the console is a terminal.
        name: logger to configure (child loggers such as ``fastreid.engine`` inherit it).
        abbrev_name: shorter name shown on the console (default: ``name``).

    Returns:
        The configured logger.
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    # A second call reconfigures instead of stacking handlers (a stale one may write to a
    # closed stream or to an earlier run's folder).
    for handler in [h for h in logger.handlers if getattr(h, "_fastreid_handler", False)]:
        logger.removeHandler(handler)
        handler.close()
    abbrev_name = name if abbrev_name is None else abbrev_name
    plain = logging.Formatter(_FORMAT, datefmt=_DATE)

    if distributed_rank == 0:
        console = _StdoutHandler()
        console.setLevel(logging.DEBUG)
        if color and sys.stdout.isatty():
            console.setFormatter(
                _ColorFormatter(
                    "[%(asctime)s %(name)s]: %(message)s",
                    datefmt=_DATE,
                    root_name=name,
                    abbrev_name=abbrev_name,
                )
            )
        else:
            console.setFormatter(plain)
        console._fastreid_handler = True
        logger.addHandler(console)

    if output is not None:
        filename = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = f"{filename}.rank{distributed_rank}"
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        file_handler = logging.FileHandler(filename, mode="a", encoding="utf-8")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(plain)
        file_handler._fastreid_handler = True
        logger.addHandler(file_handler)
    if name == "fastreid":
        for project_name in PROJECT_LOGGERS:
            _forward_to_fastreid(logging.getLogger(project_name))
    return logger


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at each record, not the one of the first set-up
    (a redirected or replaced stdout, e.g. under a test harness, still gets the messages)."""

    def __init__(self) -> None:
        super().__init__(stream=sys.stdout)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # the stream is always the current sys.stdout
        pass


class _ForwardToFastreid(logging.Handler):
    """Hands each record to the handlers the ``fastreid`` logger has at that moment, so a
    project's messages go where the core's go (console, ``log.txt``), in the same order."""

    _fastreid_forward = True

    def emit(self, record: logging.LogRecord) -> None:
        for handler in logging.getLogger("fastreid").handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def _forward_to_fastreid(logger: logging.Logger) -> None:
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if not any(getattr(h, "_fastreid_forward", False) for h in logger.handlers):
        logger.addHandler(_ForwardToFastreid())


_LOGGED_ONCE: dict = {}


def log_first_n(level: int, message: str, n: int = 1, *, name: str = "fastreid") -> None:
    """Log ``message`` at most ``n`` times per process (for warnings inside loops)."""
    count = _LOGGED_ONCE.get(message, 0)
    if count < n:
        _LOGGED_ONCE[message] = count + 1
        logging.getLogger(name).log(level, message)
