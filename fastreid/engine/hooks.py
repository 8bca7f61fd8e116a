"""Hooks of the training loop: timing, LR schedule, layer freezing, precise BN, evaluation,
checkpointing, metric writers and the progress bar."""

from __future__ import annotations

import datetime
import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import torch
from torch import nn

from fastreid.utils import comm
from fastreid.utils.checkpoint import (
    Checkpointer,
    CheckpointError,
    load_checkpoint_file,
    unwrap_model,
)
from fastreid.utils.env import preserve_rng_state
from fastreid.utils.events import EventWriter
from fastreid.utils.precision_bn import get_bn_modules, update_bn_stats
from fastreid.utils.progress import progress_bar_enabled  # noqa: F401  (its home before)

from .train_loop import HookBase

__all__ = [
    "CallbackHook",
    "IterationTimer",
    "LRScheduler",
    "LayerFreeze",
    "PreciseBN",
    "EvalHook",
    "PeriodicCheckpointer",
    "BestCheckpointer",
    "PeriodicWriter",
    "ProgressBar",
    "flatten_results_dict",
]

logger = logging.getLogger(__name__)


def _is_epoch_boundary(epoch: int, period: int, max_epoch: int) -> bool:
    """True after epoch ``epoch`` (0-based) when ``period`` divides it, or after the last."""
    done = epoch + 1
    return (period > 0 and done % period == 0) or done == max_epoch


class CallbackHook(HookBase):
    """A hook made of plain functions, each called with the trainer."""

    def __init__(
        self,
        *,
        before_train=None,
        after_train=None,
        before_epoch=None,
        after_epoch=None,
        before_step=None,
        after_step=None,
    ) -> None:
        self._fns = dict(
            before_train=before_train,
            after_train=after_train,
            before_epoch=before_epoch,
            after_epoch=after_epoch,
            before_step=before_step,
            after_step=after_step,
        )

    def _call(self, name: str) -> None:
        fn = self._fns[name]
        if fn is not None:
            fn(self.trainer)

    def before_train(self) -> None:
        self._call("before_train")

    def after_train(self) -> None:
        self._call("after_train")

    def before_epoch(self) -> None:
        self._call("before_epoch")

    def after_epoch(self) -> None:
        self._call("after_epoch")

    def before_step(self) -> None:
        self._call("before_step")

    def after_step(self) -> None:
        self._call("after_step")


class IterationTimer(HookBase):
    """Records each step's wall time as ``time`` (host clock only, no device sync) and
    logs the total training time at the end. The first ``warmup_iter`` steps are excluded
    from the summary (they include start-up work)."""

    def __init__(self, warmup_iter: int = 3) -> None:
        self._warmup_iter = warmup_iter
        self._step_start = 0.0
        self._train_start = 0.0
        self._measured_time = 0.0
        self._measured_iters = 0

    def before_train(self) -> None:
        self._train_start = time.perf_counter()

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        seconds = time.perf_counter() - self._step_start
        if self.trainer.iter - self.trainer.start_iter >= self._warmup_iter:
            self._measured_time += seconds
            self._measured_iters += 1
        self.trainer.storage.put_scalar("time", seconds)

    def after_train(self) -> None:
        total = time.perf_counter() - self._train_start
        done = self.trainer.iter + 1 - self.trainer.start_iter
        if self._measured_iters:
            per_iter = self._measured_time / self._measured_iters
            logger.info(
                f"Overall training speed: {self._measured_iters} iterations in "
                f"{datetime.timedelta(seconds=int(self._measured_time))} ({per_iter:.4f} s / it)"
            )
        logger.info(
            f"Total training time: {datetime.timedelta(seconds=int(total))} ({done} iterations)"
        )


class LRScheduler(HookBase):
    """Logs the learning rate (as ``name``, default ``lr``) and steps the scheduler after
    every iteration."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, scheduler: Any, *, name: str = "lr"
    ) -> None:
        self._optimizer = optimizer
        self._scheduler = scheduler
        self._name = name
        # Report the lr of the largest parameter group (the backbone's, in practice).
        sizes = [sum(p.numel() for p in g["params"]) for g in optimizer.param_groups]
        self._group = max(range(len(sizes)), key=sizes.__getitem__) if sizes else 0

    def after_step(self) -> None:
        lr = self._optimizer.param_groups[self._group]["lr"]
        self.trainer.storage.put_scalar(self._name, lr, smoothing_hint=False)
        self._scheduler.step()


class LayerFreeze(HookBase):
    """Keeps the named sub-modules of the model frozen (BN in eval mode, their optimizer
    groups skipped) for the first ``freeze_iters`` iterations (MODEL.FREEZE_LAYERS,
    SOLVER.FREEZE_ITERS). Gradients still flow, so DDP needs no unused-parameter search."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        freeze_layers: Sequence[str],
        freeze_iters: int,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.freeze_iters = freeze_iters
        inner = unwrap_model(model)
        missing = [name for name in freeze_layers if not hasattr(inner, name)]
        if missing:
            children = [n for n, _ in inner.named_children()]
            raise ValueError(
                f"MODEL.FREEZE_LAYERS names {missing}, which {type(inner).__name__} does not "
                f"have; choose among its sub-modules {children}."
            )
        self.names = list(freeze_layers)
        self.frozen = False

    def before_step(self) -> None:
        from fastreid.solver import set_layers_frozen

        if self.trainer.iter < self.freeze_iters:
            # Re-applied every step: evaluation switches modules back to train().
            set_layers_frozen(self.model, self.names, True, self.optimizer)
            if not self.frozen:
                logger.info(f"Freezing {self.names} for the first {self.freeze_iters} iterations")
            self.frozen = True
        elif self.frozen:
            set_layers_frozen(self.model, self.names, False, self.optimizer)
            self.frozen = False
            logger.info(f"Unfroze {self.names} at iteration {self.trainer.iter}")


class PreciseBN(HookBase):
    """Re-estimates BN statistics with the current weights before each evaluation
    (TEST.PRECISE_BN): after every ``period`` epochs and after the last one."""

    def __init__(
        self,
        model: nn.Module,
        data_loader_fn: Callable[[], Iterable[Any]],
        num_iter: int,
        period: int,
    ) -> None:
        self.model = model
        self.data_loader_fn = data_loader_fn
        self.num_iter = num_iter
        self.period = period
        self._data_iter: Optional[Any] = None

    def after_epoch(self) -> None:
        if not _is_epoch_boundary(self.trainer.epoch, self.period, self.trainer.max_epoch):
            return
        if not get_bn_modules(self.model):
            return
        with preserve_rng_state():
            if self._data_iter is None:
                self._data_iter = iter(self.data_loader_fn())
            logger.info(f"Running precise BN over {self.num_iter} iterations")
            update_bn_stats(self.model, self._data_iter, self.num_iter)


def flatten_results_dict(results: Mapping) -> Dict[str, float]:
    """``{"Market1501": {"Rank-1": 90}}`` -> ``{"Market1501/Rank-1": 90}``."""
    flat: Dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in flatten_results_dict(value).items():
                flat[f"{key}/{sub_key}"] = sub_value
        else:
            flat[str(key)] = value
    return flat


class EvalHook(HookBase):
    """Calls ``eval_function()`` every ``eval_period`` epochs and after the last epoch, and
    records its (flattened) numeric results in the storage. Random streams are left as they
    were, so evaluating does not change what training does next."""

    def __init__(self, eval_period: int, eval_function: Callable[[], Mapping]) -> None:
        self._period = eval_period
        self._func = eval_function
        self.latest_results: Mapping = {}

    def _do_eval(self) -> None:
        model = getattr(self.trainer, "model", None)
        was_training = model.training if model is not None else False
        with preserve_rng_state():
            results = self._func()
        if model is not None and was_training:
            model.train()
        self.latest_results = results or {}
        if results and comm.is_main_process():
            flat = flatten_results_dict(results)
            for name, value in flat.items():
                try:
                    value = float(value)
                except (TypeError, ValueError) as e:
                    raise ValueError(
                        f"The evaluation returned a non-numeric value for '{name}': {value!r}. "
                        "test() must return a (nested) dict of numbers."
                    ) from e
                self.trainer.storage.put_scalar(name, value, smoothing_hint=False)
        comm.synchronize()

    def after_epoch(self) -> None:
        if self._period > 0 and _is_epoch_boundary(
            self.trainer.epoch, self._period, self.trainer.max_epoch
        ):
            self._do_eval()
        elif self.trainer.epoch + 1 == self.trainer.max_epoch:
            self._do_eval()  # evaluation is always run once at the end


class PeriodicCheckpointer(HookBase):
    """Saves ``model_{epoch:04d}.pth`` every ``period`` epochs and ``model_final.pth`` after
    the last epoch, with the trainer's ``state_dict()`` (progress, RNG states, the hooks'
    states). It goes BEFORE :class:`EvalHook`, so an evaluation that fails (a broken test
    set, a crash) never costs the epoch's training. Every process calls the trainer's
    ``state_dict()`` (it may gather across processes).
    """

    def __init__(self, checkpointer: Checkpointer, period: int) -> None:
        self.checkpointer = checkpointer
        self.period = period

    def after_epoch(self) -> None:
        epoch, max_epoch = self.trainer.epoch, self.trainer.max_epoch
        periodic = self.period > 0 and (epoch + 1) % self.period == 0 and epoch + 1 < max_epoch
        final = epoch + 1 == max_epoch
        if not (periodic or final):
            return
        state = self.trainer.state_dict()
        if periodic:
            self.checkpointer.save(f"model_{epoch:04d}", **state)
        if final:
            self.checkpointer.save("model_final", **state)


class BestCheckpointer(HookBase):
    """Saves ``model_best.pth`` whenever ``metric_name`` (recorded by :class:`EvalHook` this
    epoch, so this hook goes after it) beats the best so far. ``last_checkpoint`` keeps
    pointing at the periodic checkpoints.

    Its state is ``best_metric``. On resume it is the checkpoint's, or ``model_best.pth``'s
    when higher: model_best is written after the epoch's checkpoint, by the evaluation.
    """

    def __init__(self, checkpointer: Checkpointer, *, metric_name: str = "metric") -> None:
        self.checkpointer = checkpointer
        self.metric_name = metric_name
        self.best_metric: Optional[float] = None

    def state_dict(self) -> Dict[str, Any]:
        return {"best_metric": self.best_metric}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        stored = state.get("best_metric")
        best = None
        path = os.path.join(self.checkpointer.save_dir, "model_best.pth")
        if self.checkpointer.save_dir and os.path.isfile(path):
            try:
                best = load_checkpoint_file(path).get("best_metric")
            except CheckpointError:
                best = None
        candidates = [float(v) for v in (stored, best) if v is not None]
        self.best_metric = max(candidates) if candidates else None

    def after_epoch(self) -> None:
        trainer = self.trainer
        is_best = False
        if comm.is_main_process():
            latest = trainer.storage.latest().get(self.metric_name)
            if latest is not None and latest[1] == trainer.iter and not math.isnan(latest[0]):
                if self.best_metric is None or latest[0] > self.best_metric:
                    self.best_metric = latest[0]
                    is_best = True
        if comm.get_world_size() > 1:
            # Every process saves model_best together (per-process checkpoint shards).
            is_best, self.best_metric = comm.all_gather((is_best, self.best_metric))[0]
        if is_best:
            self.checkpointer.save("model_best", tag_last=False, **self.trainer.state_dict())
            logger.info(
                f"New best {self.metric_name}: {self.best_metric:.4f} at epoch {trainer.epoch}"
            )


class PeriodicWriter(HookBase):
    """Runs the writers (console, ``metrics.json``, tensorboard) every ``period`` iterations,
    after every epoch (to include evaluation results) and at the end."""

    def __init__(self, writers: List[EventWriter], period: int = 20) -> None:
        self._writers = writers
        self._period = period

    def write(self) -> None:
        """Write what is recorded now (each value once: a later write does not repeat it)."""
        self.trainer.flush_metrics()
        for writer in self._writers:
            writer.write()

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self._period == 0:
            self.write()

    def after_epoch(self) -> None:
        self.write()

    def after_train(self) -> None:
        try:
            for writer in self._writers:
                writer.write()
        except Exception:  # never hide the error that stopped training
            logger.exception("Writing the final metrics failed")
        finally:
            for writer in self._writers:
                writer.close()


class ProgressBar(HookBase):
    """A tqdm bar over the iterations of each epoch (see :func:`progress_bar_enabled`)."""

    def __init__(self) -> None:
        self._bar = None

    def before_epoch(self) -> None:
        if not progress_bar_enabled():
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=self.trainer.iters_per_epoch,
            desc=f"epoch {self.trainer.epoch + 1}/{self.trainer.max_epoch}",
            leave=False,
            dynamic_ncols=True,
        )

    def after_step(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def after_epoch(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def after_train(self) -> None:
        self.after_epoch()
