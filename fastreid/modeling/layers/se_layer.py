"""Squeeze-and-excitation channel attention."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SELayer"]


class SELayer(nn.Module):
    """Squeeze-and-excitation (Hu et al.) with bias-free linear layers, named as in FastReID.

    ``fc.0``: Linear(C, C // reduction), ``fc.2``: Linear(C // reduction, C).
    Shapes: ``(B, C, H, W) -> (B, C, H, W)`` (input rescaled per channel).
    """

    def __init__(self, channel: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, int(channel / reduction))
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        weights = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * weights
