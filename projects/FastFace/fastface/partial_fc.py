"""PartialFC: a margin softmax over millions of classes, with the class centres sharded over
the processes and a sampled share of the negative centres per step (An et al., "Partial FC").

Sharding: process ``r`` of ``W`` holds classes ``[start, start + num_local)`` with
``num_local = C // W + (r < C % W)`` and ``start = r * (C // W) + min(r, C % W)``.

One step (:meth:`PartialFC.forward`, then ``optimizer.step()`` and :meth:`PartialFC.update`):

1. gather the features and labels of every process (the global batch, N rows);
2. sample the centres: every positive class of the global batch held by this shard, plus
   random negatives up to ``num_sample = int(sample_rate * num_local)``;
3. cosine logits against the sampled centres, the margin layer of the core (CosFace,
   ArcFace, Circle; rows whose class lives on another shard get no margin);
4. softmax across shards: all-reduce of the row maxima and of the exponential sums; the loss
   is the mean cross entropy over the global batch, identical on every process;
5. backward: logits get ``(p - onehot) / N``; the gathered features' gradient is summed over
   the processes and each keeps its own rows, multiplied by ``W`` so that DDP's averaging of
   the backbone gradients yields the gradient of the global loss.

The centres and their momentum are buffers of this module (so its ``state_dict`` is the
shard), with their own SGD optimizer (:meth:`build_optimizer`): each step the sampled rows
are handed to the optimizer as a fresh parameter with their momentum rows, and written back
in :meth:`update`, so unsampled centres keep their value and momentum untouched. At
``sample_rate >= 1`` the parameter is the shard itself and nothing is copied.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from fastreid.modeling.layers.any_softmax import CLASSIFIER_LAYERS
from fastreid.utils.errors import BadInputError

__all__ = [
    "PartialFC",
    "ShardFileError",
    "fastreid_shard_file",
    "load_fastreid_shard",
    "shard_range",
]


def _world() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_range(num_classes: int, rank: int, world_size: int) -> Tuple[int, int]:
    """``(start, num_local)`` of the classes process ``rank`` holds."""
    base, extra = divmod(num_classes, world_size)
    return rank * base + min(rank, extra), base + int(rank < extra)


class _GatherRows(torch.autograd.Function):
    """All-gather equal-sized row blocks; backward sums the gradient over processes, keeps
    this process's rows and multiplies them by the world size (DDP averages afterwards)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        rank, world = _world()
        ctx.rank, ctx.world, ctx.rows = rank, world, x.shape[0]
        if world == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        if ctx.world == 1:
            return grad
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows] * ctx.world


class _ShardedCrossEntropy(torch.autograd.Function):
    """Mean cross entropy of a softmax whose classes are spread over processes.

    ``logits`` ``(N, S)`` are this shard's columns; ``targets`` ``(N,)`` the column of the
    true class, or -1 when another shard holds it.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _, world = _world()
        logits = logits.float()
        row_max = (
            logits.max(dim=1).values
            if logits.shape[1]
            else logits.new_full((logits.shape[0],), -float("inf"))
        )
        if world > 1:
            dist.all_reduce(row_max, op=dist.ReduceOp.MAX)
        shifted = logits - row_max[:, None]
        exp = shifted.exp()
        row_sum = exp.sum(dim=1)
        if world > 1:
            dist.all_reduce(row_sum)
        valid = targets >= 0
        rows = torch.nonzero(valid).squeeze(1)
        target_logp = torch.zeros_like(row_sum)
        target_logp[rows] = shifted[rows, targets[rows]] - row_sum[rows].log()
        if world > 1:
            dist.all_reduce(target_logp)
        ctx.save_for_backward(exp, row_sum, targets)
        return -target_logp.mean()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> Tuple[torch.Tensor, None]:
        exp, row_sum, targets = ctx.saved_tensors
        grad = exp / row_sum[:, None]
        rows = torch.nonzero(targets >= 0).squeeze(1)
        grad[rows, targets[rows]] -= 1.0
        grad *= grad_out / targets.shape[0]
        return grad, None


class ShardFileError(BadInputError, ValueError):
    """A FastReID PartialFC shard file that is missing, unreadable or of the wrong shape."""


class PartialFC(nn.Module):
    """Sharded, sampled margin-softmax classifier (see the module docstring).

    Args:
        num_classes: all classes C (over every process).
        embedding_dim: feature size D.
        sample_rate: share of this shard's centres used per step (positives always kept).
        cls_type, scale, margin: the core margin layer (``CosSoftmax``, ``ArcSoftmax``,
            ``CircleSoftmax``, ``Linear``), as ``MODEL.HEADS.CLS_LAYER/SCALE/MARGIN``.
        seed: seed of the negative sampling; process ``r`` uses ``seed + r``.
        rank, world_size: default to the initialised process group (or 0 / 1).
    """

    # A shard differs per process: never averaged or broadcast across ranks.
    per_rank_state = True

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        sample_rate: float = 1.0,
        cls_type: str = "CosSoftmax",
        scale: float = 64.0,
        margin: float = 0.4,
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        default_rank, default_world = _world()
        self.rank = default_rank if rank is None else int(rank)
        self.world_size = default_world if world_size is None else int(world_size)
        if num_classes < self.world_size:
            raise ValueError(
                f"PartialFC needs at least one class per process: MODEL.HEADS.NUM_CLASSES is "
                f"{num_classes} for {self.world_size} processes."
            )
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"MODEL.HEADS.PFC.SAMPLE_RATE must be in (0, 1], got {sample_rate}.")
        if cls_type not in CLASSIFIER_LAYERS:
            raise KeyError(f"Unknown MODEL.HEADS.CLS_LAYER '{cls_type}' for PartialFC.")
        self.num_classes = int(num_classes)
        self.embedding_dim = int(embedding_dim)
        self.sample_rate = float(sample_rate)
        self.class_start, self.num_local = shard_range(num_classes, self.rank, self.world_size)
        self.num_sample = max(1, int(self.sample_rate * self.num_local))
        self.cls_layer = CLASSIFIER_LAYERS[cls_type](num_classes, scale, margin)
        device = torch.device("cpu") if device is None else torch.device(device)
        gen = torch.Generator(device=device).manual_seed(int(seed) * 1000003 + self.rank)
        weight = torch.randn(self.num_local, embedding_dim, generator=gen, device=device) * 0.01
        self.register_buffer("weight", weight)
        self.register_buffer("weight_mom", torch.zeros_like(weight))
        self.generator = torch.Generator(device=device).manual_seed(int(seed) + self.rank)
        # The parameter handed to the optimizer this step and the shard rows it holds.
        self.__dict__["sub_weight"] = nn.Parameter(weight.new_zeros(0, embedding_dim))
        self._index: Optional[torch.Tensor] = None
        self._optimizer: Optional[torch.optim.Optimizer] = None

    @property
    def samples_all(self) -> bool:
        return self.num_sample >= self.num_local

    # -- optimizer ---------------------------------------------------------------------------
    def build_optimizer(
        self, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False
    ) -> torch.optim.SGD:
        """The centres' own SGD (one parameter group; LR schedulers work on it as usual).

        Between steps its state is only the hyper-parameters: the momentum rows live in this
        module's ``weight_mom``. The trainer finds this module as ``ExtraOptimizer.module``.
        """
        opt = torch.optim.SGD(
            [self.sub_weight],
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        self._optimizer = opt
        return opt

    # -- the step ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, targets: torch.Tensor) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        """``(shard rows to use or None for all, column of each row's class or -1)``."""
        local = (targets >= self.class_start) & (targets < self.class_start + self.num_local)
        columns = torch.where(local, targets - self.class_start, torch.full_like(targets, -1))
        if self.samples_all:
            return None, columns
        positive = torch.unique(columns[local])
        if positive.numel() >= self.num_sample:
            index = positive
        else:
            scores = torch.rand(self.num_local, generator=self.generator, device=self.weight.device)
            scores[positive] = 2.0  # positives first
            index = torch.topk(scores, self.num_sample).indices.sort().values
        remapped = torch.searchsorted(index, columns.clamp(min=0))
        return index, torch.where(local, remapped, columns)

    def _prepare(self, index: Optional[torch.Tensor]) -> nn.Parameter:
        if index is None:
            sub, mom = nn.Parameter(self.weight), self.weight_mom
        else:
            sub, mom = nn.Parameter(self.weight[index]), self.weight_mom[index]
        self.__dict__["sub_weight"] = sub
        self._index = index
        opt = self._optimizer
        if opt is not None:
            opt.param_groups[0]["params"] = [sub]
            opt.state.clear()
            if opt.param_groups[0].get("momentum", 0):
                opt.state[sub] = {"momentum_buffer": mom}
        return sub

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The global-batch loss from this process's ``features`` ``(b, D)`` and ``targets``
        ``(b,)`` (every process must pass the same ``b``)."""
        if features.dim() != 2 or features.shape[1] != self.embedding_dim:
            raise ValueError(
                f"PartialFC expects features (B, {self.embedding_dim}), got {tuple(features.shape)}; "
                "MODEL.HEADS.EMBEDDING_DIM must match the centres."
            )
        targets = targets.to(self.weight.device).long()
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= self.num_classes):
            raise ValueError(
                f"A training label ({int(targets.min())}..{int(targets.max())}) is outside the "
                f"{self.num_classes} classes of PartialFC; set MODEL.HEADS.NUM_CLASSES to the "
                "identity count of the training data (or 0 to take it from the data)."
            )
        features = features.float().to(self.weight.device)
        total_features = _GatherRows.apply(features)
        total_targets = _gather_labels(targets)
        index, columns = self.sample(total_targets)
        sub = self._prepare(index)
        logits = F.linear(F.normalize(total_features), F.normalize(sub))
        logits = self.cls_layer(logits, columns)
        return _ShardedCrossEntropy.apply(logits, columns)

    @torch.no_grad()
    def update(self) -> None:
        """Write the stepped rows (and their momentum) back into the shard."""
        opt = self._optimizer
        sub = self.sub_weight
        if self._index is not None:
            self.weight[self._index] = sub.detach()
            if opt is not None and sub in opt.state and "momentum_buffer" in opt.state[sub]:
                self.weight_mom[self._index] = opt.state[sub]["momentum_buffer"]
        if opt is not None:
            opt.state.clear()
        self._index = None

    # -- per-rank state ----------------------------------------------------------------------
    def get_extra_state(self) -> Dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "rank": self.rank,
            "world_size": self.world_size,
            "generator": self.generator.get_state(),
        }

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        mine = (self.num_classes, self.rank, self.world_size)
        theirs = (state.get("num_classes"), state.get("rank"), state.get("world_size"))
        if mine != theirs:
            raise ValueError(
                f"This PartialFC shard was saved for {theirs[0]} classes, rank {theirs[1]} of "
                f"{theirs[2]} processes; this run is {mine[0]} classes, rank {mine[1]} of "
                f"{mine[2]}. Resume with the same process count and NUM_CLASSES."
            )
        self.generator.set_state(state["generator"])

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, shard=[{self.class_start}, "
            f"{self.class_start + self.num_local}), num_sample={self.num_sample}, "
            f"rank={self.rank}/{self.world_size}"
        )


def _gather_labels(targets: torch.Tensor) -> torch.Tensor:
    _, world = _world()
    if world == 1:
        return targets
    parts = [torch.empty_like(targets) for _ in range(world)]
    dist.all_gather(parts, targets.contiguous())
    return torch.cat(parts)


# -- FastReID's shard files ------------------------------------------------------------------
def fastreid_shard_file(path: str, rank: int) -> str:
    """The FastReID PartialFC shard of process ``rank`` for ``path``.

    ``path`` is a FastReID output folder (its ``last_weight_{rank:02d}`` tag names the latest
    shard, e.g. ``softmax_weight_03.pth``) or a file name, where ``{rank}`` is replaced by the
    two-digit rank (``softmax_weight_{rank}.pth``)."""
    if os.path.isdir(path):
        tag = os.path.join(path, f"last_weight_{rank:02d}")
        try:
            with open(tag, encoding="utf-8") as f:
                name = f.read().strip()
        except OSError:
            raise ShardFileError(
                f"MODEL.HEADS.PFC.WEIGHTS '{path}' is a folder without FastReID's tag file "
                f"last_weight_{rank:02d} (naming the shard of process {rank}); give the shard "
                "file itself, e.g. softmax_weight_{rank}.pth."
            ) from None
        return os.path.join(path, name)
    return path.replace("{rank}", f"{rank:02d}")


def load_fastreid_shard(pfc: PartialFC, path: str) -> str:
    """Load a FastReID PartialFC shard (``{"model": {"weight", "momentum"}, ...}``, one file
    per process) into ``pfc``; returns the file read. The centres and their momentum must
    have this shard's shape (same NUM_CLASSES, process count and EMBEDDING_DIM)."""
    file = fastreid_shard_file(path, pfc.rank)
    if not os.path.isfile(file):
        raise ShardFileError(
            f"MODEL.HEADS.PFC.WEIGHTS: the PartialFC shard {file} of process {pfc.rank} does not "
            "exist."
        )
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ShardFileError(
            f"MODEL.HEADS.PFC.WEIGHTS: cannot read {file} as a PartialFC shard "
            f"({type(e).__name__}: {e})."
        ) from None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or not {"weight", "momentum"} <= set(model):
        raise ShardFileError(
            f"MODEL.HEADS.PFC.WEIGHTS: {file} is not a FastReID PartialFC shard (expected "
            "{'model': {'weight', 'momentum'}})."
        )
    want = tuple(pfc.weight.shape)
    for key, target in (("weight", pfc.weight), ("momentum", pfc.weight_mom)):
        value = torch.as_tensor(model[key])
        if tuple(value.shape) != want:
            raise ShardFileError(
                f"MODEL.HEADS.PFC.WEIGHTS: {file} holds {key} of shape {tuple(value.shape)}; "
                f"process {pfc.rank} of {pfc.world_size} needs {want} (NUM_CLASSES "
                f"{pfc.num_classes}, EMBEDDING_DIM {pfc.embedding_dim}). Load it with the same "
                "process count and NUM_CLASSES it was trained with."
            )
        with torch.no_grad():
            target.copy_(value.to(target.dtype))
    return file
