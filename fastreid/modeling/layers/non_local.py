"""Non-local (self-attention over positions) block, as used by AGW."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .batch_norm import get_norm

__all__ = ["NonLocalBlock", "Non_local"]


class NonLocalBlock(nn.Module):
    """Embedded-dot-product non-local block (Wang et al.) with a zero-initialised residual.

    ``g``, ``theta``, ``phi``: 1x1 convs to ``inter_channels``; ``W.0`` 1x1 conv back to
    ``in_channels`` and ``W.1`` its norm (weight and bias start at 0, so the block starts as
    the identity). Names match FastReID's ``Non_local``.

    ``inter_channels`` defaults to ``in_channels // reduction``. FastReID's released AGW
    checkpoints were trained with a single inter channel; pass ``inter_channels=1`` to load them.

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        bn_norm: str = "BN",
        reduction: int = 2,
        inter_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = inter_channels or max(1, in_channels // reduction)
        self.g = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.theta = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.W = nn.Sequential(
            nn.Conv2d(self.inter_channels, in_channels, kernel_size=1),
            get_norm(bn_norm, in_channels),
        )
        norm = self.W[1]
        if getattr(norm, "weight", None) is not None:
            nn.init.zeros_(norm.weight)
        if getattr(norm, "bias", None) is not None:
            nn.init.zeros_(norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        value = self.g(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        query = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        key = self.phi(x).flatten(2)  # (B, C', HW)
        # Dot-product affinity normalised by the number of positions (no softmax).
        affinity = torch.bmm(query, key) / key.shape[-1]  # (B, HW, HW)
        y = torch.bmm(affinity, value).transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return x + self.W(y)


# FastReID's name for the same block.
Non_local = NonLocalBlock
