"""Normalization layers and the ``get_norm`` factory used by backbones and heads."""

from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BatchNorm", "GhostBatchNorm", "FrozenBatchNorm", "get_norm"]


def _init_affine(
    norm: nn.modules.batchnorm._BatchNorm,
    weight_freeze: bool,
    bias_freeze: bool,
    weight_init: float,
    bias_init: float,
) -> None:
    """Set a BN's affine parameters to constants and freeze them as asked (e.g. BNNeck bias)."""
    nn.init.constant_(norm.weight, weight_init)
    nn.init.constant_(norm.bias, bias_init)
    norm.weight.requires_grad_(not weight_freeze)
    norm.bias.requires_grad_(not bias_freeze)


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose weight/bias can be frozen and initialised to a chosen value."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        weight_freeze: bool = False,
        bias_freeze: bool = False,
        weight_init: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        _init_affine(self, weight_freeze, bias_freeze, weight_init, bias_init)


class SyncBatchNorm(nn.SyncBatchNorm):
    """Cross-process BatchNorm (plain BN when not distributed); same options as BatchNorm."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        weight_freeze: bool = False,
        bias_freeze: bool = False,
        weight_init: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        _init_affine(self, weight_freeze, bias_freeze, weight_init, bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                self.training,
                self.momentum,
                self.eps,
            )
        return super().forward(x)


class GhostBatchNorm(BatchNorm):
    """BatchNorm over ``num_splits`` virtual batches in training; virtual batch ``k`` holds
    samples ``k, k + num_splits, ...``."""

    def __init__(self, num_features: int, num_splits: int = 1, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.num_splits <= 1:
            return super().forward(x)
        n, c, h, w = x.shape
        if n % self.num_splits != 0:
            raise ValueError(
                f"GhostBatchNorm: batch size {n} is not divisible by num_splits={self.num_splits}."
            )
        # Statistics per virtual batch; running stats are averaged across the splits.
        mean = self.running_mean.repeat(self.num_splits)
        var = self.running_var.repeat(self.num_splits)
        out = F.batch_norm(
            x.reshape(-1, c * self.num_splits, h, w),
            mean,
            var,
            self.weight.repeat(self.num_splits),
            self.bias.repeat(self.num_splits),
            True,
            self.momentum,
            self.eps,
        ).view(n, c, h, w)
        self.running_mean.copy_(mean.view(self.num_splits, c).mean(dim=0))
        self.running_var.copy_(var.view(self.num_splits, c).mean(dim=0))
        return out


class FrozenBatchNorm(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (all buffers, no gradients)."""

    def __init__(self, num_features: int, eps: float = 1e-5, **_: object) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        if x.dim() == 2:
            return x * scale + bias
        return x * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints of a trainable BN also carry num_batches_tracked: not needed here.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __repr__(self) -> str:
        return f"FrozenBatchNorm(num_features={self.num_features}, eps={self.eps})"


def get_norm(norm: Union[str, nn.Module, None], out_channels: int, **kwargs) -> nn.Module:
    """Build a normalization layer by name: BN, syncBN, GhostBN, FrozenBN, GN, IN, or ''.

    ``kwargs`` (weight_freeze, bias_freeze, weight_init, bias_init) reach the BN variants.
    """
    if norm is None or norm == "":
        return nn.Identity()
    if not isinstance(norm, str):
        return norm(out_channels, **kwargs)
    factories = {
        "BN": lambda: BatchNorm(out_channels, **kwargs),
        "syncBN": lambda: SyncBatchNorm(out_channels, **kwargs),
        "GhostBN": lambda: GhostBatchNorm(out_channels, **kwargs),
        "FrozenBN": lambda: FrozenBatchNorm(out_channels),
        "GN": lambda: nn.GroupNorm(32 if out_channels % 32 == 0 else 1, out_channels),
        "IN": lambda: nn.InstanceNorm2d(out_channels, affine=True),
    }
    if norm not in factories:
        raise KeyError(
            f"Unknown normalization '{norm}'; choose one of {', '.join(factories)} "
            "(MODEL.BACKBONE.NORM / MODEL.HEADS.NORM)."
        )
    return factories[norm]()
