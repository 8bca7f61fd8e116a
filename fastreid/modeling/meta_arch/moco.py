"""MoCo: Baseline + a queue of features from a momentum (key) encoder (He et al. 2020)."""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from fastreid.config import CfgNode, configurable
from fastreid.utils import comm
from fastreid.utils.precision_bn import in_bn_statistics_pass

from ..protocols import accepts_camids
from .baseline import Baseline, BatchedInputs
from .build import META_ARCH_REGISTRY

__all__ = ["MoCo", "FeatureQueue"]

_NEG_INF = -99999999.0


class FeatureQueue(nn.Module):
    """A FIFO queue of ``size`` L2-normalised features ``(dim,)`` with their class ids.

    Buffers: ``queue`` ``(dim, size)``, ``queue_label`` ``(size,)`` (``-1`` marks an empty slot,
    neither positive nor negative), ``queue_ptr`` ``(1,)``.
    """

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        if size <= 0:
            raise ValueError(f"MODEL.QUEUE_SIZE must be positive, got {size}.")
        self.size = size
        self.register_buffer("queue", F.normalize(torch.randn(dim, size), dim=0))
        self.register_buffer("queue_label", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Add ``keys`` ``(B, dim)`` (already normalised) and ``labels`` ``(B,)`` from all ranks."""
        keys = comm.all_gather_tensor(keys.contiguous())
        labels = comm.all_gather_tensor(labels.contiguous())
        if keys.size(0) > self.size:
            keys, labels = keys[-self.size :], labels[-self.size :]
        n = keys.size(0)
        # The pointer stays on the device: reading it on the host would make every training
        # step wait for the GPU (and could not be captured in a CUDA graph).
        ptr = self.queue_ptr
        idx = (torch.arange(n, device=keys.device) + ptr) % self.size
        self.queue[:, idx] = keys.t().to(self.queue.dtype)
        self.queue_label[idx] = labels
        self.queue_ptr.copy_((ptr + n) % self.size)

    def cosface_loss(
        self, queries: torch.Tensor, targets: torch.Tensor, margin: float, gamma: float
    ) -> torch.Tensor:
        """Pairwise CosFace of normalised ``queries`` ``(B, dim)`` against the queue (scalar)."""
        sim = queries @ self.queue.to(queries.dtype)
        valid = self.queue_label[None, :] >= 0
        same = targets[:, None] == self.queue_label[None, :]
        is_pos = (same & valid).to(sim.dtype)
        is_neg = (~same & valid).to(sim.dtype)
        logit_p = -gamma * sim * is_pos + _NEG_INF * (1.0 - is_pos)
        logit_n = gamma * (sim * is_neg + margin) + _NEG_INF * (1.0 - is_neg)
        return F.softplus(torch.logsumexp(logit_p, dim=1) + torch.logsumexp(logit_n, dim=1)).mean()


@META_ARCH_REGISTRY.register()
class MoCo(Baseline):
    """Baseline whose training adds ``loss_mb``: the query features against a queue of key
    features from a momentum copy of backbone + head (``key_backbone``, ``key_heads``; updated as
    ``k = m * k + (1 - m) * q`` each step, never by the optimizer).

    Eval is Baseline's (the query encoder). Extra config: ``MODEL.QUEUE_SIZE`` and
    ``MODEL.LOSSES.MEMORY.*``.
    """

    @configurable
    def __init__(
        self,
        *,
        queue_size: int = 8192,
        momentum: float = 0.999,
        memory_margin: float = 0.25,
        memory_gamma: float = 32.0,
        memory_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum
        self.memory_margin = memory_margin
        self.memory_gamma = memory_gamma
        self.memory_scale = memory_scale
        self.key_backbone = copy.deepcopy(self.backbone)
        self.key_heads = copy.deepcopy(self.heads)
        for p in list(self.key_backbone.parameters()) + list(self.key_heads.parameters()):
            p.requires_grad_(False)
        self.memory = FeatureQueue(self._metric_feat_dim(), queue_size)

    def _metric_feat_dim(self) -> int:
        """Dim of the head's training ``features`` (before or after the neck)."""
        return int(getattr(self.heads, "metric_feat_dim", self.heads.feat_dim))

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        args = super().from_config(cfg)
        memory = cfg.MODEL.LOSSES.MEMORY
        args.update(
            queue_size=cfg.MODEL.QUEUE_SIZE,
            momentum=memory.MOMENTUM,
            memory_margin=memory.MARGIN,
            memory_gamma=memory.GAMMA,
            memory_scale=memory.SCALE,
        )
        return args

    @torch.no_grad()
    def _momentum_update(self) -> None:
        pairs = [(self.backbone, self.key_backbone), (self.heads, self.key_heads)]
        for query, key in pairs:
            for q, k in zip(query.parameters(), key.parameters()):
                k.mul_(self.momentum).add_(q.detach(), alpha=1.0 - self.momentum)

    def forward(
        self, batched_inputs: BatchedInputs
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        if not self.training:
            return super().forward(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        camids = self.get_camids(batched_inputs)
        targets = self.get_targets(batched_inputs)
        outputs = self.heads(self.backbone_features(images, camids), targets)
        if in_bn_statistics_pass():
            return {}  # precise BN: no momentum update, no enqueue
        with torch.no_grad():
            self._momentum_update()
            keys = self._key_features(images, camids, targets)
        self.memory.enqueue(F.normalize(keys, dim=1), targets)
        return self.losses(
            outputs, targets, **self.extra_loss_inputs(batched_inputs, images, outputs)
        )

    def _key_features(
        self, images: torch.Tensor, camids: Optional[torch.Tensor], targets: torch.Tensor
    ) -> torch.Tensor:
        if accepts_camids(self.key_backbone):
            feats = self.key_backbone(images, camids=camids)
        else:
            feats = self.key_backbone(images)
        return self.key_heads(feats, targets)["features"]

    def losses(
        self, outputs: Dict[str, torch.Tensor], gt_labels: torch.Tensor, **extra: Any
    ) -> Dict[str, torch.Tensor]:
        loss_dict = super().losses(outputs, gt_labels, **extra)
        queries = F.normalize(outputs["features"], dim=1)
        loss_dict["loss_mb"] = (
            self.memory.cosface_loss(queries, gt_labels, self.memory_margin, self.memory_gamma)
            * self.memory_scale
        )
        return loss_dict
