"""Split attention convolution (ResNeSt, Zhang et al.)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .batch_norm import get_norm

__all__ = ["SplAtConv2d"]


class SplAtConv2d(nn.Module):
    """A grouped conv producing ``radix`` splits per cardinal group, fused by attention.

    Names follow ResNeSt (``conv``, ``bn0``, ``fc1``, ``bn1``, ``fc2``).
    Shapes: ``(B, in_channels, H, W) -> (B, channels, H / stride, W / stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        groups: int = 1,
        radix: int = 2,
        reduction_factor: int = 4,
        norm: str = "BN",
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.radix = radix
        self.cardinality = groups
        self.channels = channels
        inter_channels = max(in_channels * radix // reduction_factor, 32)
        self.conv = nn.Conv2d(
            in_channels,
            channels * radix,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups * radix,
            bias=False,
        )
        self.bn0 = get_norm(norm, channels * radix)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(channels, inter_channels, 1, groups=groups)
        # The attention path works on (B, C, 1, 1) vectors: instance norm is undefined there.
        self.bn1 = get_norm("BN" if norm == "IN" else norm, inter_channels)
        self.fc2 = nn.Conv2d(inter_channels, channels * radix, 1, groups=groups)

    def _split_softmax(self, attention: torch.Tensor) -> torch.Tensor:
        """``(B, C * radix, 1, 1)`` logits -> weights normalised over the radix splits."""
        b = attention.shape[0]
        if self.radix == 1:
            return torch.sigmoid(attention)
        attention = attention.view(b, self.cardinality, self.radix, -1).transpose(1, 2)
        return F.softmax(attention, dim=1).reshape(b, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn0(self.conv(x)))
        b = x.shape[0]
        if self.radix > 1:
            splits = torch.split(x, self.channels, dim=1)
            gap = sum(splits)
        else:
            splits, gap = (x,), x
        gap = F.adaptive_avg_pool2d(gap, 1)
        gap = self.relu(self.bn1(self.fc1(gap)))
        weights = self._split_softmax(self.fc2(gap)).view(b, -1, 1, 1)
        if self.radix == 1:
            return weights * x
        parts = torch.split(weights, self.channels, dim=1)
        return sum(w * s for w, s in zip(parts, splits))
