"""IBN-a: instance normalisation on half the channels, batch normalisation on the rest."""

from __future__ import annotations

import torch
from torch import nn

from .batch_norm import get_norm

__all__ = ["IBN"]


class IBN(nn.Module):
    """Instance-Batch Normalization (Pan et al., IBN-Net, variant a).

    The first ``int(planes * ratio)`` channels go through ``IN`` (affine InstanceNorm2d), the
    rest through ``BN`` (the configured norm). Parameter names match FastReID (``IN``, ``BN``).

    Shapes: ``(B, planes, H, W) -> (B, planes, H, W)``.
    """

    def __init__(self, planes: int, bn_norm: str = "BN", ratio: float = 0.5) -> None:
        super().__init__()
        self.half = int(planes * ratio)
        if not 0 < self.half < planes:
            raise ValueError(f"IBN needs 0 < int(planes * ratio) < planes; got {planes=} {ratio=}.")
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = get_norm(bn_norm, planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat((self.IN(first.contiguous()), self.BN(second.contiguous())), dim=1)
