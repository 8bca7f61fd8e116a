"""The training loop: hooks around an epoch/iteration loop, and the step that trains.

* :class:`TrainerBase` runs ``before_train -> [before_epoch -> [before_step -> run_step ->
  after_step] * iters_per_epoch -> after_epoch] * epochs -> after_train`` over its hooks.
* :class:`SimpleTrainer` implements ``run_step``: fetch a batch, forward to a dict of
  losses, sum, backward, clip, ``optimizer.step()``, ``zero_grad(set_to_none=True)``.
  Loss values stay on the device and are copied to the host in one batch every
  ``log_period`` iterations (and at each epoch's end), so the step never waits for the GPU
  just to log; a NaN/inf loss then stops training naming the iteration and every loss.
* Mixed precision goes through the same step: ``autocast=(device_type, dtype)`` (CUDA fp16
  with a GradScaler, CUDA bf16, CPU bf16); :class:`AMPTrainer` is SimpleTrainer with it set.
* ``cuda_graph=True`` replays the whole step (forward, backward, clipping, optimizer) as one
  CUDA graph (:mod:`fastreid.engine.cuda_graph`), or says once why it cannot and runs eagerly.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from fastreid.utils import comm
from fastreid.utils.errors import BadInputError
from fastreid.utils.events import EventStorage

from .cuda_graph import CudaGraphStep
from .data_stream import EpochDataStream

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMPTrainer", "NonFiniteLossError"]

# A loss this many times its first recorded value means training diverges.
DIVERGENCE_FACTOR = 1000.0


class NonFiniteLossError(BadInputError, FloatingPointError):
    """A loss became NaN or infinite; the message names the iteration, the losses and what
    to change (tools report it as one ``error:`` line)."""


class HookBase:
    """A callback of the training loop. ``self.trainer`` is set by ``register_hooks``.

    Hooks observe the trainer (``trainer.iter``, ``trainer.epoch``, ``trainer.storage``,
    ``trainer.model``); they do not reach into the model's internals.
    """

    trainer: TrainerBase

    def state_dict(self) -> Dict[str, Any]:
        """The hook's own resumable state (default: none). The trainer's ``state_dict``
        gathers it into every checkpoint, so key names must be unique among the hooks."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Take back this hook's keys from a checkpoint's state (others are ignored)."""

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass


class TrainerBase:
    """An epoch-based loop over registered hooks; subclasses implement :meth:`run_step`.

    Attributes:
        iter: the current iteration (global, counted from 0).
        epoch: the current epoch (from 0).
        start_epoch, max_epoch, iters_per_epoch, max_iter: the loop's bounds.
        storage: the :class:`EventStorage` open during :meth:`train`.
    """

    def __init__(self) -> None:
        self._hooks: List[HookBase] = []
        self.iter = 0
        self.epoch = 0
        self.start_epoch = 0
        self.start_iter = 0
        self.max_epoch = 0
        self.iters_per_epoch = 0
        self.max_iter = 0
        self.storage: EventStorage

    def register_hooks(self, hooks: Iterable[Optional[HookBase]]) -> None:
        """Append hooks (``None`` entries are skipped); they run in registration order."""
        for hook in hooks:
            if hook is None:
                continue
            # A weak proxy avoids a reference cycle trainer -> hook -> trainer.
            hook.trainer = weakref.proxy(self)
            self._hooks.append(hook)

    def train(self, start_epoch: int, max_epoch: int, iters_per_epoch: int) -> None:
        """Run epochs ``start_epoch .. max_epoch - 1`` of ``iters_per_epoch`` iterations."""
        logger = logging.getLogger(__name__)
        if iters_per_epoch < 1:
            raise ValueError(
                f"iters_per_epoch is {iters_per_epoch}: the training set has fewer images than "
                "SOLVER.IMS_PER_BATCH. Lower SOLVER.IMS_PER_BATCH or add training data."
            )
        self.start_epoch, self.max_epoch, self.iters_per_epoch = (
            start_epoch,
            max_epoch,
            iters_per_epoch,
        )
        self.max_iter = max_epoch * iters_per_epoch
        self.iter = self.start_iter = start_epoch * iters_per_epoch
        logger.info(f"Starting training from epoch {start_epoch} (iteration {self.start_iter})")
        with EventStorage(self.start_iter) as self.storage:
            try:
                self.before_train()
                for self.epoch in range(start_epoch, max_epoch):
                    self.begin_epoch_data(self.epoch)
                    self.before_epoch()
                    first = self.epoch * iters_per_epoch
                    for self.iter in range(first, first + iters_per_epoch):
                        self.before_step()
                        self.run_step()
                        self.after_step()
                    self.end_epoch_data()
                    self.after_epoch()
            finally:
                self.after_train()

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_epoch(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_epoch()

    def after_epoch(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_epoch()

    def before_step(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()

    def begin_epoch_data(self, epoch: int) -> None:
        """Prepare the data of ``epoch`` (called before the ``before_epoch`` hooks)."""

    def end_epoch_data(self) -> None:
        """Called after an epoch's last step, before the ``after_epoch`` hooks."""

    def flush_metrics(self) -> None:
        """Move values recorded on the device into the storage (writers call this)."""

    def run_step(self) -> None:
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Progress (``epoch``, ``iteration``) and the state of every hook, as one flat dict
        (the layout of a checkpoint's non-model entries)."""
        state: Dict[str, Any] = {"epoch": self.epoch, "iteration": self.iter}
        for hook in self._hooks:
            merge_state(state, hook.state_dict(), type(hook).__name__)
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue after the epoch ``state`` was saved at; every hook reads its own keys."""
        self.start_epoch = int(state.get("epoch", -1)) + 1
        for hook in self._hooks:
            hook.load_state_dict(state)


def merge_state(state: Dict[str, Any], part: Dict[str, Any], owner: str) -> Dict[str, Any]:
    """Add ``part``'s entries to ``state`` (in place); a key two parts claim is an error."""
    clash = sorted(set(part) & set(state))
    if clash:
        raise KeyError(f"{owner}.state_dict() reuses the checkpoint key(s) {clash}; rename them.")
    state.update(part)
    return state


GradClipper = Callable[[Iterable[torch.Tensor]], Any]


class SimpleTrainer(TrainerBase):
    """One optimisation step per iteration, for models that return a dict of losses.

    Args:
        model: returns ``Dict[str, Tensor]`` of scalar losses in training mode.
        data_loader: the (infinite) training loader.
        optimizer: a ``torch.optim.Optimizer``.
        grad_clipper: called with the parameters between backward and step (optional).
        log_period: iterations between copies of the loss values to the host.
        data_seed: seed of the per-epoch data worker seeds (see :class:`EpochDataStream`).
        extra_optimizers: more optimizers stepped after ``optimizer`` every iteration (e.g.
            one for parameters outside the model, such as a sharded classifier).
        autocast: ``(device_type, dtype)`` to run the forward pass and the losses under
            ``torch.autocast``; ``None`` trains in full precision.
        grad_scaler: a ``torch.amp.GradScaler`` (CUDA float16): the loss is scaled before
            backward, gradients unscaled before clipping, and the optimizers stepped through it.
        cuda_graph: capture the whole step in a CUDA graph after a few eager warm-up steps
            (see :class:`fastreid.engine.cuda_graph.CudaGraphStep`); where that cannot work
            (no CUDA, several processes, fp16 GradScaler, an optimizer that is not
            capturable) one warning says why and the step runs eagerly.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Any,
        optimizer: torch.optim.Optimizer,
        *,
        grad_clipper: Optional[GradClipper] = None,
        log_period: int = 20,
        data_seed: int = 0,
        extra_optimizers: Sequence[torch.optim.Optimizer] = (),
        autocast: Optional[Tuple[str, torch.dtype]] = None,
        grad_scaler: Optional[torch.amp.GradScaler] = None,
        cuda_graph: bool = False,
    ) -> None:
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self.data_stream = EpochDataStream(data_loader, seed=data_seed)
        self.optimizer = optimizer
        self.grad_clipper = grad_clipper
        self.log_period = max(1, int(log_period))
        self.autocast = autocast
        self.grad_scaler = grad_scaler
        self._data_iter: Optional[Any] = None
        self._pending: List[Tuple[int, List[str], torch.Tensor]] = []
        self._first_loss: Optional[float] = None
        self._warned_divergence = False
        self.optimizers: List[torch.optim.Optimizer] = [optimizer, *extra_optimizers]
        self._params = [p for p in model.parameters() if p.requires_grad]
        seen = {id(p) for p in self._params}
        for extra in extra_optimizers:  # clip parameters that live outside the model too
            for group in extra.param_groups:
                self._params += [p for p in group["params"] if id(p) not in seen]
                seen.update(id(p) for p in group["params"])
        self.graph_step: Optional[CudaGraphStep] = None
        if cuda_graph:
            reason = CudaGraphStep.refusal(self)
            if reason is None:
                self.graph_step = CudaGraphStep(self)
            else:
                logging.getLogger(__name__).warning(
                    f"SOLVER.CUDA_GRAPH: {reason}; training without a CUDA graph."
                )

    # -- data -------------------------------------------------------------------------------
    def begin_epoch_data(self, epoch: int) -> None:
        skip = epoch * self.iters_per_epoch if self._data_iter is None else 0
        self._data_iter = self.data_stream.epoch_iterator(epoch, self.iters_per_epoch, skip)

    def end_epoch_data(self) -> None:
        self.flush_metrics()

    def next_batch(self) -> Tuple[Any, float]:
        """The next training batch and the seconds spent waiting for it."""
        if self._data_iter is None:  # run_step called outside train(): draw from epoch 0
            self._data_iter = iter(self.data_loader)
        start = time.perf_counter()
        try:
            data = next(self._data_iter)
        except StopIteration as e:
            raise RuntimeError(
                "The training loader ran out of batches within an epoch; build_train_loader must "
                "return an infinite loader (an infinite sampler)."
            ) from e
        return data, time.perf_counter() - start

    # -- the step ---------------------------------------------------------------------------
    def run_step(self) -> None:
        """fetch -> :meth:`forward_losses` -> :meth:`backward_and_update` -> record; or, with
        a CUDA graph, the same work replayed from the graph."""
        assert self.model.training, f"{type(self).__name__}: the model was switched to eval mode!"
        data, data_time = self.next_batch()
        result = self.graph_step.step(data) if self.graph_step is not None else None
        if result is None:
            loss_dict, losses = self.forward_losses(data)
            self.backward_and_update(losses)
            self.zero_grad()
        else:
            loss_dict, losses = result
        self.record_losses(loss_dict, losses, data_time)

    def autocast_context(self, cache_enabled: bool = True) -> Any:
        """``torch.autocast`` as :attr:`autocast` asks, or a no-op context in full precision."""
        if self.autocast is None:
            return contextlib.nullcontext()
        device_type, dtype = self.autocast
        return torch.autocast(device_type=device_type, dtype=dtype, cache_enabled=cache_enabled)

    def forward_losses(
        self, data: Any, cache_enabled: bool = True
    ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """The model's loss dict on ``data`` and their sum (under autocast when asked)."""
        with self.autocast_context(cache_enabled):
            loss_dict = self.model(data)
            losses = self._sum_losses(loss_dict)
        return loss_dict, losses

    def backward_and_update(self, losses: torch.Tensor) -> None:
        """Backward (scaled with a GradScaler), clip, step every optimizer. No host sync."""
        scaler = self.grad_scaler
        (scaler.scale(losses) if scaler is not None else losses).backward()
        if self.grad_clipper is not None:
            if scaler is not None:
                for optimizer in self.optimizers:
                    scaler.unscale_(optimizer)
            self.grad_clipper(self._params)
        for optimizer in self.optimizers:
            if scaler is not None:
                scaler.step(optimizer)
            else:
                optimizer.step()
        if scaler is not None:
            scaler.update()

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    @staticmethod
    def _sum_losses(loss_dict: Dict[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(loss_dict, dict) or not loss_dict:
            raise TypeError(
                "In training mode the model must return a non-empty dict of named scalar losses "
                f"(e.g. {{'loss_cls': ...}}); got {type(loss_dict).__name__}."
            )
        return sum(loss_dict.values())  # type: ignore[return-value]

    # -- metrics without per-step host syncs ------------------------------------------------
    def record_losses(
        self, loss_dict: Dict[str, torch.Tensor], total: torch.Tensor, data_time: float
    ) -> None:
        """Keep this step's losses on the device; flush every ``log_period`` iterations."""
        names = ["total_loss", *sorted(loss_dict)]
        values = torch.stack(
            [total.detach().float()] + [loss_dict[k].detach().float() for k in names[1:]]
        )
        self._pending.append((self.iter, names, values))
        self.storage.put_scalar("data_time", data_time)
        if len(self._pending) >= self.log_period:
            self.flush_metrics()

    def flush_metrics(self) -> None:
        """Copy the pending losses to the host in one transfer (averaged over processes),
        store them per iteration, and stop on the first non-finite value."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        names = pending[0][1]
        if any(p[1] != names for p in pending):  # loss names changed mid-period: one by one
            for item in pending:
                self._pending = [item]
                self.flush_metrics()
            return
        stacked = torch.stack([p[2] for p in pending])
        if comm.get_world_size() > 1:
            stacked = comm.reduce_dict({"losses": stacked})["losses"]
        host = stacked.cpu().tolist()
        for (iteration, _, _), row in zip(pending, host):
            if not all(abs(v) != float("inf") and v == v for v in row):
                values = ", ".join(f"{n}={v}" for n, v in zip(names, row))
                raise NonFiniteLossError(
                    f"Loss became infinite or NaN at iteration {iteration} (epoch "
                    f"{iteration // max(1, self.iters_per_epoch)}): {values}. Lower SOLVER.BASE_LR, "
                    "enable SOLVER.CLIP_GRADIENTS, or check the data and MODEL.LOSSES."
                )
            for name, value in zip(names, row):
                self.storage.put_scalar(name, value, iteration=iteration)
            self._check_divergence(iteration, row[0])

    def _check_divergence(self, iteration: int, total: float) -> None:
        """Warn once when the total loss climbs orders of magnitude above its first value."""
        if self._first_loss is None:
            if total > 0:
                self._first_loss = total
            return
        if self._warned_divergence or total <= DIVERGENCE_FACTOR * self._first_loss:
            return
        self._warned_divergence = True
        rates = [g["lr"] for opt in self.optimizers for g in opt.param_groups]
        logging.getLogger(__name__).warning(
            f"total_loss is {total:.4g} at iteration {iteration}, "
            f"{total / self._first_loss:.0f}x its first value ({self._first_loss:.4g}): "
            f"training is diverging. The learning rate is {max(rates):.4g}; lower "
            "SOLVER.BASE_LR (or enable SOLVER.CLIP_GRADIENTS)."
        )

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """The loop's state, the data stream's seeds and the grad scaler (when there is one)."""
        state = merge_state(super().state_dict(), self.data_stream.state_dict(), "data stream")
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.data_stream.load_state_dict(state)
        if self.grad_scaler is not None and "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])


class AMPTrainer(SimpleTrainer):
    """SimpleTrainer with automatic mixed precision (the same step, with ``autocast`` set).

    * CUDA float16: autocast + ``torch.amp.GradScaler`` (gradients unscaled before clipping).
    * CUDA / CPU bfloat16: autocast only (bf16 has fp32's range; no scaling needed).

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: ``torch.float16`` or ``torch.bfloat16`` (the CPU only supports bfloat16).
        grad_scaler: a scaler for fp16; built automatically for CUDA fp16 when ``None``.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Any,
        optimizer: torch.optim.Optimizer,
        *,
        device_type: str = "cuda",
        dtype: torch.dtype = torch.float16,
        grad_scaler: Optional[torch.amp.GradScaler] = None,
        **kwargs: Any,
    ) -> None:
        if device_type == "cpu" and dtype != torch.bfloat16:
            raise ValueError("CPU autocast supports bfloat16 only; set SOLVER.AMP.DTYPE bfloat16.")
        if grad_scaler is None and device_type == "cuda" and dtype == torch.float16:
            grad_scaler = torch.amp.GradScaler("cuda")
        super().__init__(
            model,
            data_loader,
            optimizer,
            autocast=(device_type, dtype),
            grad_scaler=grad_scaler,
            **kwargs,
        )
        self.device_type = device_type
        self.dtype = dtype
