"""One learning-rate scheduler per run, stepped once per iteration.

The lr of iteration ``i`` (0-based; the value in effect after ``i`` calls of ``step()``) in
epoch ``e = i // iters_per_epoch`` is

    lr_i = warmup(i) * main(n(e))

* ``warmup(i)`` for ``i < warmup_iters`` with ``a = i / warmup_iters``:
  linear ``f * (1 - a) + a``, constant ``f``, exp ``f ** (1 - a)`` (``f`` = WARMUP_FACTOR);
  1 afterwards.
* ``n(e)``: how many epochs the main curve has advanced. As in FastReID it advances only at the
  end of an epoch that finishes past the warmup and is not held by DELAY_EPOCHS, so
  ``n(e) = max(0, e - e0)`` with ``e0 = max(warmup_iters // iters_per_epoch, DELAY_EPOCHS - 1, 0)``:
  the warmup epochs shift the whole curve (e.g. 100 warmup iterations of 39 per epoch put
  ``STEPS: [10]`` at epoch 12).
* ``main(n)``: MultiStepLR ``base_lr * gamma ** (number of STEPS <= n)``; CosineAnnealingLR
  ``eta_min + (base_lr - eta_min) * (1 + cos(pi * min(n, T) / T)) / 2`` with
  ``T = MAX_EPOCH - max(ceil(warmup_iters / iters_per_epoch), DELAY_EPOCHS)``.

Everything is a closed form of the iteration count, so ``state_dict`` / ``load_state_dict``
resume exactly.
"""

from __future__ import annotations

import bisect
import math
from typing import List, Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler

from fastreid.config import CfgNode

__all__ = ["WarmupMainLR", "build_lr_scheduler", "warmup_factor_at_iter"]

WARMUP_METHODS = ("linear", "constant", "exp")
SCHEDULERS = ("MultiStepLR", "CosineAnnealingLR")


def warmup_factor_at_iter(method: str, it: int, warmup_iters: int, warmup_factor: float) -> float:
    """Multiplier of the lr at iteration ``it`` during warmup (1 from ``warmup_iters`` on)."""
    if it >= warmup_iters:
        return 1.0
    alpha = it / warmup_iters
    if method == "linear":
        return warmup_factor * (1.0 - alpha) + alpha
    if method == "constant":
        return warmup_factor
    if method == "exp":
        return warmup_factor ** (1.0 - alpha)
    raise ValueError(
        f"Unknown SOLVER.WARMUP_METHOD '{method}'; choose one of {', '.join(WARMUP_METHODS)}."
    )


class WarmupMainLR(LRScheduler):
    """Warmup in iterations, then an epoch-based MultiStep or cosine curve (see module doc)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        iters_per_epoch: int,
        sched: str = "MultiStepLR",
        max_epoch: int = 120,
        steps: Sequence[int] = (30, 55),
        gamma: float = 0.1,
        delay_epochs: int = 0,
        eta_min_lr: float = 1e-7,
        warmup_factor: float = 0.1,
        warmup_iters: int = 0,
        warmup_method: str = "linear",
        last_epoch: int = -1,
    ) -> None:
        if sched not in SCHEDULERS:
            raise ValueError(
                f"Unknown SOLVER.SCHED '{sched}'; choose one of {', '.join(SCHEDULERS)}."
            )
        if warmup_method not in WARMUP_METHODS:
            raise ValueError(
                f"Unknown SOLVER.WARMUP_METHOD '{warmup_method}'; choose one of {', '.join(WARMUP_METHODS)}."
            )
        if iters_per_epoch <= 0:
            raise ValueError(f"iters_per_epoch must be positive, got {iters_per_epoch}.")
        if list(steps) != sorted(steps):
            raise ValueError(f"SOLVER.STEPS must be increasing, got {list(steps)}.")
        # The cosine spans the epochs left after the warmup epochs or the delay (FastReID).
        self.cosine_epochs = int(max_epoch) - max(
            math.ceil(int(warmup_iters) / int(iters_per_epoch)), int(delay_epochs)
        )
        if sched == "CosineAnnealingLR" and self.cosine_epochs <= 0:
            raise ValueError(
                f"SOLVER.MAX_EPOCH ({max_epoch}) must exceed both SOLVER.DELAY_EPOCHS "
                f"({delay_epochs}) and the warmup epochs (SOLVER.WARMUP_ITERS {warmup_iters} / "
                f"{iters_per_epoch} iterations per epoch, rounded up) for the cosine schedule."
            )
        self.iters_per_epoch = int(iters_per_epoch)
        self.sched = sched
        self.max_epoch = int(max_epoch)
        self.steps = [int(s) for s in steps]
        self.gamma = float(gamma)
        self.delay_epochs = int(delay_epochs)
        self.eta_min_lr = float(eta_min_lr)
        self.warmup_factor = float(warmup_factor)
        self.warmup_iters = int(warmup_iters)
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def main_steps(self, epoch: int) -> int:
        """``n(epoch)``: how far the main curve has advanced by ``epoch`` (see module doc)."""
        first = max(self.warmup_iters // self.iters_per_epoch, self.delay_epochs - 1, 0)
        return max(0, epoch - first)

    def _main_lr(self, base_lr: float, epoch: int) -> float:
        n = self.main_steps(epoch)
        if self.sched == "MultiStepLR":
            return base_lr * self.gamma ** bisect.bisect_right(self.steps, n)
        t = min(n, self.cosine_epochs)
        return (
            self.eta_min_lr
            + (base_lr - self.eta_min_lr) * (1.0 + math.cos(math.pi * t / self.cosine_epochs)) / 2.0
        )

    def lr_at(self, it: int) -> List[float]:
        """The lr of every param group at iteration ``it``."""
        factor = warmup_factor_at_iter(
            self.warmup_method, it, self.warmup_iters, self.warmup_factor
        )
        epoch = it // self.iters_per_epoch
        return [self._main_lr(base_lr, epoch) * factor for base_lr in self.base_lrs]

    def get_lr(self) -> List[float]:
        return self.lr_at(self.last_epoch)

    def _get_closed_form_lr(self) -> List[float]:
        return self.lr_at(self.last_epoch)


def build_lr_scheduler(
    cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int
) -> WarmupMainLR:
    """The per-iteration scheduler of ``SOLVER.*`` (call ``step()`` after every iteration)."""
    s = cfg.SOLVER
    return WarmupMainLR(
        optimizer,
        iters_per_epoch=iters_per_epoch,
        sched=s.SCHED,
        max_epoch=s.MAX_EPOCH,
        steps=s.STEPS,
        gamma=s.GAMMA,
        delay_epochs=s.DELAY_EPOCHS,
        eta_min_lr=s.ETA_MIN_LR,
        warmup_factor=s.WARMUP_FACTOR,
        warmup_iters=s.WARMUP_ITERS,
        warmup_method=s.WARMUP_METHOD,
    )
