"""Training metrics: an :class:`EventStorage` of scalar histories and the writers that
print them (console), append them to ``metrics.json`` and to tensorboard event files."""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from collections import defaultdict
from typing import IO, Any, Dict, List, Optional, Tuple

import numpy as np
import torch

__all__ = [
    "HistoryBuffer",
    "EventStorage",
    "get_event_storage",
    "EventWriter",
    "CommonMetricPrinter",
    "JSONWriter",
    "TensorboardXWriter",
]

_CURRENT_STORAGE_STACK: List[EventStorage] = []


def get_event_storage() -> EventStorage:
    """The storage of the training loop that is running (inside ``with EventStorage()``)."""
    if not _CURRENT_STORAGE_STACK:
        raise RuntimeError(
            "get_event_storage() must be called inside 'with EventStorage(...)'; "
            "the trainer opens one in train()."
        )
    return _CURRENT_STORAGE_STACK[-1]


class HistoryBuffer:
    """The last ``max_length`` values of one scalar with the iteration of each."""

    def __init__(self, max_length: int = 1_000_000) -> None:
        self._max_length = max_length
        self._data: List[Tuple[float, int]] = []
        self._count = 0
        self._global_avg = 0.0

    def update(self, value: float, iteration: int) -> None:
        if len(self._data) == self._max_length:
            self._data.pop(0)
        self._data.append((value, iteration))
        self._count += 1
        self._global_avg += (value - self._global_avg) / self._count

    def latest(self) -> float:
        return self._data[-1][0]

    def median(self, window_size: int) -> float:
        return float(np.median([v for v, _ in self._data[-window_size:]]))

    def avg(self, window_size: int) -> float:
        return float(np.mean([v for v, _ in self._data[-window_size:]]))

    def global_avg(self) -> float:
        return self._global_avg

    def values(self) -> List[Tuple[float, int]]:
        return self._data


class EventStorage:
    """Holds the scalars hooks and the trainer record, keyed by name, with their iteration.

    Values must be Python numbers: the trainer copies loss tensors to the host in one batch
    every few iterations rather than syncing the device for each.
    """

    def __init__(self, start_iter: int = 0) -> None:
        self._history: Dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: Dict[str, bool] = {}
        self._latest_scalars: Dict[str, Tuple[float, int]] = {}
        self._iter = start_iter

    def put_scalar(
        self, name: str, value: Any, smoothing_hint: bool = True, *, iteration: Optional[int] = None
    ) -> None:
        """Record ``value`` for ``name`` at ``iteration`` (default: the current iteration).

        ``smoothing_hint`` tells writers to show a windowed median (losses) rather than the
        latest value (lr, evaluation results).
        """
        if isinstance(value, torch.Tensor):
            value = value.item()  # callers on the hot path pass floats; this is a fallback
        iteration = self._iter if iteration is None else iteration
        value = float(value)
        self._history[name].update(value, iteration)
        self._latest_scalars[name] = (value, iteration)
        previous = self._smoothing_hints.get(name)
        if previous is not None and previous != smoothing_hint:
            raise ValueError(f"Scalar '{name}' was recorded with another smoothing_hint before.")
        self._smoothing_hints[name] = smoothing_hint

    def put_scalars(self, *, smoothing_hint: bool = True, **kwargs: Any) -> None:
        for name, value in kwargs.items():
            self.put_scalar(name, value, smoothing_hint=smoothing_hint)

    def history(self, name: str) -> HistoryBuffer:
        if name not in self._history:
            raise KeyError(f"No history for '{name}'; recorded: {sorted(self._history)}")
        return self._history[name]

    def histories(self) -> Dict[str, HistoryBuffer]:
        return self._history

    def latest(self) -> Dict[str, Tuple[float, int]]:
        """``{name: (latest value, iteration it was recorded at)}``."""
        return self._latest_scalars

    def latest_with_smoothing_hint(self, window_size: int = 20) -> Dict[str, Tuple[float, int]]:
        """Like :meth:`latest`, with the median over ``window_size`` for smoothed scalars."""
        result = {}
        for name, (value, iteration) in self._latest_scalars.items():
            if self._smoothing_hints[name]:
                value = self._history[name].median(window_size)
            result[name] = (value, iteration)
        return result

    def smoothing_hints(self) -> Dict[str, bool]:
        return self._smoothing_hints

    @property
    def iter(self) -> int:
        return self._iter

    @iter.setter
    def iter(self, value: int) -> None:
        self._iter = int(value)

    def step(self) -> None:
        self._iter += 1

    def __enter__(self) -> EventStorage:
        _CURRENT_STORAGE_STACK.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert _CURRENT_STORAGE_STACK[-1] is self
        _CURRENT_STORAGE_STACK.pop()


class EventWriter:
    """Base class of writers; ``write()`` is called by the PeriodicWriter hook."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JSONWriter(EventWriter):
    """Appends one JSON object per written iteration to ``metrics.json``::

        {"iteration": 19, "total_loss": 5.2, "lr": 3.5e-05, "time": 0.41, ...}

    Each scalar is written once per new value (evaluation results get their own line). The
    file is opened at the first write, so a trainer that is built but never trains leaves no
    open file behind.
    """

    def __init__(self, json_file: str, window_size: int = 20) -> None:
        self._path = json_file
        self._file: Optional[IO[str]] = None
        self._window_size = window_size
        self._written: Dict[str, int] = {}

    def write(self) -> None:
        if self._file is None:
            os.makedirs(os.path.dirname(os.path.abspath(self._path)), exist_ok=True)
            self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 (see close())
        storage = get_event_storage()
        by_iter: Dict[int, Dict[str, float]] = defaultdict(dict)
        for name, (value, it) in storage.latest_with_smoothing_hint(self._window_size).items():
            if it > self._written.get(name, -1):
                by_iter[it][name] = value
                self._written[name] = it
        for it in sorted(by_iter):
            self._file.write(json.dumps({"iteration": it, **by_iter[it]}) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorboardXWriter(EventWriter):
    """Writes every scalar recorded since the last call to tensorboard event files."""

    def __init__(self, log_dir: str, window_size: int = 20, **kwargs: Any) -> None:
        self._log_dir = log_dir
        self._kwargs = kwargs
        self._window_size = window_size
        self._writer: Any = None  # a SummaryWriter, made at the first write (like JSONWriter)
        self._written: Dict[str, int] = {}

    def write(self) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self._log_dir, **self._kwargs)
        storage = get_event_storage()
        for name, (value, it) in storage.latest_with_smoothing_hint(self._window_size).items():
            if it > self._written.get(name, -1):
                self._writer.add_scalar(name, value, it)
                self._written[name] = it
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class CommonMetricPrinter(EventWriter):
    """Prints ``eta  epoch/iter  losses  time  data_time  lr  max_mem`` on the console."""

    def __init__(self, max_iter: int, iters_per_epoch: int, window_size: int = 20) -> None:
        self.logger = logging.getLogger("fastreid.utils.events")
        self._max_iter = max_iter
        self._iters_per_epoch = max(1, iters_per_epoch)
        self._window_size = window_size
        self._last_write: Optional[Tuple[int, float]] = None
        self._last_printed = -1

    def _eta(self, storage: EventStorage) -> Optional[str]:
        iteration = storage.iter
        if iteration >= self._max_iter - 1:
            return None
        remaining = self._max_iter - iteration - 1
        try:
            seconds = storage.history("time").median(1000) * remaining
            return str(datetime.timedelta(seconds=int(seconds)))
        except KeyError:
            # Before IterationTimer has measured a step, estimate from the wall clock.
            now = time.perf_counter()
            eta = None
            if self._last_write is not None:
                per_iter = (now - self._last_write[1]) / max(1, iteration - self._last_write[0])
                eta = str(datetime.timedelta(seconds=int(per_iter * remaining)))
            self._last_write = (iteration, now)
            return eta

    def write(self) -> None:
        storage = get_event_storage()
        iteration = storage.iter
        if iteration == self._last_printed:
            return  # already printed (e.g. the end of an epoch that ended on a log period)
        self._last_printed = iteration
        epoch = iteration // self._iters_per_epoch
        latest = storage.latest()
        losses = "  ".join(
            f"{name}: {buf.median(self._window_size):.4g}"
            for name, buf in storage.histories().items()
            if "loss" in name and latest[name][1] > iteration - self._window_size
        )

        def _fmt(name: str, fmt: str) -> str:
            if name not in storage.histories():
                return ""
            return f"{name}: {format(storage.history(name).avg(self._window_size), fmt)}  "

        lr = f"lr: {latest['lr'][0]:.3e}  " if "lr" in latest else ""
        mem = ""
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            mem = f"max_mem: {torch.cuda.max_memory_allocated() / 1024 / 1024:.0f}M"
        eta = self._eta(storage)
        self.logger.info(
            f"{'eta: ' + eta + '  ' if eta else ''}epoch/iter: {epoch}/{iteration}  {losses}  "
            f"{_fmt('time', '.4f')}{_fmt('data_time', '.4f')}{lr}{mem}".rstrip()
        )
