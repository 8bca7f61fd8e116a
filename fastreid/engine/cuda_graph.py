"""The whole training step as one CUDA graph (``SOLVER.CUDA_GRAPH``).

A step of a ResNet-50 launches about 900 kernels; at a few microseconds each the host, not the
GPU, sets the pace. :class:`CudaGraphStep` records forward, losses, backward, gradient clipping
and every optimizer's update once, then replays them with one launch per iteration:

1. The first batch fixes the shapes: its tensors are copied into static buffers on the
   model's device; every later batch is copied into the same buffers (a batch whose tensor
   shapes or dtypes differ stops the graph with one warning, and training goes on eagerly).
2. :attr:`WARMUP_STEPS` ordinary steps run on a side stream (cuDNN autotuning, optimizer
   state and allocator pools are set up outside the capture), reading their learning rates
   from the same device tensors as the graph (point 4), so they compute what a replay does.
3. The step is captured with gradients unset, so its backward writes the gradients into
   memory the graph owns; each replay overwrites them (no ``zero_grad`` needed).
4. Learning rates change every iteration (the LR schedule writes floats into the param
   groups), so during capture each group reads its ``lr`` from a one-element device tensor,
   and each replay first fills those tensors from the groups' floats. The groups keep their
   floats, so checkpoints and schedulers see exactly what they see without a graph.
5. Python-side state baked into the graph (which optimizer groups are frozen and which
   modules are in eval mode, as ``SOLVER.FREEZE_ITERS`` sets them) is checked before every
   replay; when it changes the step is captured again.

It needs CUDA, one process, no float16 GradScaler (bf16 autocast and fp32 are captured) and
capturable optimizers (``build_optimizer`` passes ``capturable=True`` with the key on).
Python code in the model runs only at capture: branches on batch values are frozen then.

``capture=False`` runs the same bookkeeping (static buffers, lr tensors, re-capture on a
freeze change) without a graph, executing the recorded body directly each step; it is how
the CPU tests check that this path trains exactly like the eager step.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import torch

from fastreid.utils import comm

if TYPE_CHECKING:  # pragma: no cover
    from .train_loop import SimpleTrainer

__all__ = ["CudaGraphStep", "StaticBatch", "ShapeChangedError"]

logger = logging.getLogger(__name__)

StepOutput = Tuple[Dict[str, torch.Tensor], torch.Tensor]


class ShapeChangedError(ValueError):
    """A batch does not fit the static buffers the graph was captured with."""


def _describe(value: Any, path: str = "batch") -> Dict[str, Tuple[Tuple[int, ...], torch.dtype]]:
    """Every tensor of a batch (dicts, lists, tuples) by its path: ``(shape, dtype)``."""
    if isinstance(value, torch.Tensor):
        return {path: (tuple(value.shape), value.dtype)}
    items: Any = ()
    if isinstance(value, dict):
        items = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    found: Dict[str, Tuple[Tuple[int, ...], torch.dtype]] = {}
    for sub_path, sub in items:
        found.update(_describe(sub, sub_path))
    return found


class StaticBatch:
    """Device buffers holding a batch's tensors at fixed addresses.

    ``data`` mirrors the first batch (dicts, lists and tuples of tensors; other values are
    kept as they were in the first batch). :meth:`copy_from` writes a new batch into the
    buffers, or raises :class:`ShapeChangedError` naming what differs.
    """

    def __init__(self, batch: Any, device: torch.device) -> None:
        self.device = device
        self.layout = _describe(batch)
        self.data = self._allocate(batch)
        self.copy_from(batch)

    def _allocate(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return torch.empty_like(value, device=self.device)
        if isinstance(value, dict):
            return {k: self._allocate(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._allocate(v) for v in value)
        return value

    def copy_from(self, batch: Any) -> None:
        layout = _describe(batch)
        if layout != self.layout:
            changed = sorted(set(layout) ^ set(self.layout)) or [
                k for k in layout if layout[k] != self.layout[k]
            ]
            name = changed[0]
            raise ShapeChangedError(
                f"{name} changed from {self.layout.get(name, 'absent')} to "
                f"{layout.get(name, 'absent')} (a CUDA graph needs fixed shapes: a fixed "
                "INPUT.SIZE_TRAIN and full batches)"
            )
        self._copy(self.data, batch)

    def _copy(self, static: Any, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            static.copy_(value, non_blocking=True)
        elif isinstance(value, dict):
            for k, v in value.items():
                self._copy(static[k], v)
        elif isinstance(value, (list, tuple)):
            for s, v in zip(static, value):
                self._copy(s, v)


class CudaGraphStep:
    """Runs :class:`SimpleTrainer`'s step from a CUDA graph (see the module docstring).

    :meth:`step` returns the step's ``(loss_dict, total)`` (tensors the next replay
    overwrites: record them before it), or ``None`` when the graph was given up and the
    trainer must run this and every later step eagerly.
    """

    WARMUP_STEPS = 3

    def __init__(self, trainer: SimpleTrainer, capture: bool = True) -> None:
        self.trainer = trainer
        self.capture = capture
        self.static: Optional[StaticBatch] = None
        self.warmup_left = self.WARMUP_STEPS if capture else 0
        self.disabled: Optional[str] = None
        self.captures = 0  # how many times the step was captured (re-captures included)
        self._replay: Optional[Callable[[], StepOutput]] = None
        self._signature: Any = None
        self._lr_buffers: List[Tuple[Dict[str, Any], torch.Tensor]] = []
        self._graph: Any = None
        self._side_stream: Any = None

    # -- when a graph cannot work ------------------------------------------------------------
    @staticmethod
    def refusal(trainer: SimpleTrainer) -> Optional[str]:
        """Why the step of ``trainer`` cannot be captured, or ``None`` when it can."""
        if not torch.cuda.is_available() or any(p.device.type != "cuda" for p in trainer._params):
            return "a CUDA graph needs the model on a CUDA device"
        if comm.get_world_size() > 1:
            return "the step is not captured with several processes (DDP)"
        if trainer.grad_scaler is not None:
            return (
                "the float16 GradScaler step is not captured (set SOLVER.AMP.DTYPE bfloat16, "
                "which needs no scaler)"
            )
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if "capturable" in group and not group["capturable"]:
                    return (
                        f"the optimizer {type(optimizer).__name__} was built without "
                        "capturable=True (build_optimizer passes it when SOLVER.CUDA_GRAPH is on)"
                    )
        return None

    def _give_up(self, reason: str) -> None:
        self.disabled = reason
        logger.warning(f"SOLVER.CUDA_GRAPH: {reason}; training on without a CUDA graph.")
        self._replay = self._graph = None
        self.trainer.zero_grad()  # the graph's gradients must not leak into eager steps

    # -- the step ----------------------------------------------------------------------------
    def step(self, data: Any) -> Optional[StepOutput]:
        if self.disabled is not None:
            return None
        try:
            if self.static is None:
                self.static = StaticBatch(data, self.trainer._params[0].device)
            else:
                self.static.copy_from(data)
        except ShapeChangedError as e:
            self._give_up(str(e))
            return None
        if self.warmup_left > 0:
            self.warmup_left -= 1
            return self._warmup_step()
        signature = self._python_state()
        if self._replay is None or signature != self._signature:
            try:
                self._capture(signature)
            except Exception as e:  # e.g. a model that reads a tensor on the host mid-step
                # Nothing ran during the failed capture: this step runs eagerly instead.
                self._give_up(f"capturing the step failed ({type(e).__name__}: {e})")
                return None
        for group, buffer in self._lr_buffers:
            buffer.fill_(group["lr"])
        assert self._replay is not None
        return self._replay()

    def _python_state(self) -> Any:
        """What the captured step baked in from Python: a change means capturing again
        (frozen optimizer groups, modules in eval mode such as frozen BN layers, parameters
        that stopped or started taking gradients)."""
        trainer = self.trainer
        return (
            tuple(
                tuple(g.get("freeze_status") for g in optimizer.param_groups)
                for optimizer in trainer.optimizers
            ),
            tuple(m.training for m in trainer.model.modules()),
            tuple(p.requires_grad for p in trainer._params),
        )

    def _body(self) -> StepOutput:
        assert self.static is not None
        trainer = self.trainer
        loss_dict, losses = trainer.forward_losses(self.static.data, cache_enabled=False)
        trainer.backward_and_update(losses)
        return loss_dict, losses

    def _warmup_step(self) -> StepOutput:
        # The learning rates come from device tensors here too, so that warm-up steps and
        # replays do the same arithmetic (a resumed run warms up at other iterations).
        self._lr_buffers = self._lr_tensors()
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream()
        side = self._side_stream
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self._with_lr_tensors(self._body)
            self.trainer.zero_grad()
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _lr_tensors(self) -> List[Tuple[Dict[str, Any], torch.Tensor]]:
        buffers = []
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                device = group["params"][0].device
                # float64 on the CPU keeps the eager step's exact Python-float arithmetic;
                # the capturable CUDA kernels take a float32 learning rate.
                dtype = torch.float64 if device.type == "cpu" else torch.float32
                buffers.append(
                    (group, torch.tensor(float(group["lr"]), dtype=dtype, device=device))
                )
        return buffers

    def _with_lr_tensors(self, fn: Callable[[], StepOutput]) -> StepOutput:
        floats = [group["lr"] for group, _ in self._lr_buffers]
        for group, buffer in self._lr_buffers:
            group["lr"] = buffer
        try:
            return fn()
        finally:
            for (group, _), value in zip(self._lr_buffers, floats):
                group["lr"] = value

    def _capture(self, signature: Any) -> None:
        self._signature = signature
        self._lr_buffers = self._lr_tensors()
        self.captures += 1
        self.trainer.zero_grad()  # backward then allocates the gradients inside the graph
        if not self.capture:

            def run_body() -> StepOutput:
                self.trainer.zero_grad()  # a replay overwrites the gradients, as the graph does
                return self._with_lr_tensors(self._body)

            self._replay = run_body
            return
        self._graph = None
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        # thread_local: the data loader's pin-memory thread may call CUDA during the capture.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self._with_lr_tensors(self._body)
        self._graph = graph

        def replay() -> StepOutput:
            graph.replay()
            return static_out

        self._replay = replay
        logger.info(f"SOLVER.CUDA_GRAPH: captured the training step (capture {self.captures}).")
