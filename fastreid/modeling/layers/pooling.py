"""Global pooling layers used by the heads (names as in FastReID's ``MODEL.HEADS.POOL_LAYER``).

Every layer takes a feature map ``(B, C, H, W)`` and returns ``(B, C', 1, 1)`` (``C' == C``
except for :class:`Flatten`, which keeps every position: ``C' == C * H * W``). They use only
tensor operations, so they trace to ONNX / TorchScript without Python-side shape logic.
"""

from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GlobalAvgPool",
    "GlobalMaxPool",
    "GeneralizedMeanPooling",
    "GeneralizedMeanPoolingP",
    "AdaptiveAvgMaxPool",
    "FastGlobalAvgPool",
    "ClipGlobalAvgPool",
    "Flatten",
    "Identity",
    "POOLING_LAYERS",
    "build_pooling",
]


class GlobalAvgPool(nn.AdaptiveAvgPool2d):
    """Mean over all positions: ``(B, C, H, W) -> (B, C, 1, 1)``."""

    def __init__(self, output_size: int = 1) -> None:
        super().__init__(output_size)


class GlobalMaxPool(nn.AdaptiveMaxPool2d):
    """Max over all positions: ``(B, C, H, W) -> (B, C, 1, 1)``."""

    def __init__(self, output_size: int = 1) -> None:
        super().__init__(output_size)


def generalized_mean(
    x: torch.Tensor, p: Union[float, torch.Tensor], output_size: int, eps: float
) -> torch.Tensor:
    """``(mean_hw x.clamp(eps) ** p) ** (1 / p)``: ``(B, C, H, W) -> (B, C, s, s)``."""
    x = x.clamp(min=eps).pow(p)
    return F.adaptive_avg_pool2d(x, output_size).pow(1.0 / p)


class GeneralizedMeanPooling(nn.Module):
    """GeM pooling with a fixed exponent: ``(mean_hw x.clamp(eps) ** p) ** (1 / p)``.

    ``p = 1`` is average pooling, ``p -> inf`` approaches max pooling. FastReID's default p = 3.
    """

    def __init__(self, norm: float = 3.0, output_size: int = 1, eps: float = 1e-6) -> None:
        super().__init__()
        if norm <= 0:
            raise ValueError(f"GeneralizedMeanPooling needs a positive exponent, got p={norm}.")
        self.p = float(norm)
        self.output_size = output_size
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return generalized_mean(x, self.p, self.output_size, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p}, output_size={self.output_size}"


class GeneralizedMeanPoolingP(nn.Module):
    """GeM pooling with a learnable exponent: parameter ``p`` of shape ``(1,)``, init 3."""

    def __init__(self, norm: float = 3.0, output_size: int = 1, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * norm)
        self.output_size = output_size
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return generalized_mean(x, self.p, self.output_size, self.eps)

    def extra_repr(self) -> str:
        return f"p=learnable, output_size={self.output_size}"


class AdaptiveAvgMaxPool(nn.Module):
    """Sum of global average and global max pooling: ``(B, C, H, W) -> (B, C, 1, 1)``."""

    def __init__(self, output_size: int = 1) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(output_size)
        self.max_pool = nn.AdaptiveMaxPool2d(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.avg_pool(x) + self.max_pool(x)


class FastGlobalAvgPool(nn.Module):
    """Global average pooling as a plain mean over H and W; ``flatten`` returns ``(B, C)``."""

    def __init__(self, flatten: bool = False) -> None:
        super().__init__()
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=not self.flatten)


class ClipGlobalAvgPool(nn.Module):
    """Global average pooling followed by clamping to ``[0, 1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.avg_pool = FastGlobalAvgPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.avg_pool(x).clamp(min=0.0, max=1.0)


class Flatten(nn.Module):
    """Keep every position: ``(B, C, H, W) -> (B, C * H * W, 1, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)[:, :, None, None]


class Identity(nn.Module):
    """No pooling, for backbones that already return ``(B, C, 1, 1)`` (e.g. ViT)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


POOLING_LAYERS = {
    cls.__name__: cls
    for cls in (
        GlobalAvgPool,
        GlobalMaxPool,
        GeneralizedMeanPooling,
        GeneralizedMeanPoolingP,
        AdaptiveAvgMaxPool,
        FastGlobalAvgPool,
        ClipGlobalAvgPool,
        Flatten,
        Identity,
    )
}
# Short aliases FastReID's older configs used.
POOLING_LAYERS.update(
    {
        "avgpool": GlobalAvgPool,
        "maxpool": GlobalMaxPool,
        "gempool": GeneralizedMeanPooling,
        "gempoolP": GeneralizedMeanPoolingP,
        "avgmaxpool": AdaptiveAvgMaxPool,
        "fastavgpool": FastGlobalAvgPool,
        "clipavgpool": ClipGlobalAvgPool,
        "flatten": Flatten,
        "identity": Identity,
    }
)


def build_pooling(name: str) -> nn.Module:
    """Build a pooling layer by its ``MODEL.HEADS.POOL_LAYER`` name."""
    if name not in POOLING_LAYERS:
        valid = ", ".join(k for k in POOLING_LAYERS if k[0].isupper())
        raise KeyError(f"Unknown MODEL.HEADS.POOL_LAYER '{name}'; choose one of {valid}.")
    return POOLING_LAYERS[name]()
