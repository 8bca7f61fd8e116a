"""Helpers shared by the backbones that wrap torchvision networks."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ...layers.batch_norm import get_norm

__all__ = ["norm_factory", "set_last_stride"]


def norm_factory(norm: str, **kwargs) -> Callable[[int], nn.Module]:
    """A ``norm_layer(channels)`` callable for torchvision models built from our norm names.

    ``kwargs`` (e.g. ``eps``, ``momentum``) reach the BN variants only.
    """
    bn_like = norm in ("BN", "syncBN", "GhostBN")

    def make(channels: int) -> nn.Module:
        return get_norm(norm, channels, **(kwargs if bn_like else {}))

    return make


def set_last_stride(module: nn.Module, stride: int) -> None:
    """Set the stride of the last stride-2 convolution in ``module`` to ``stride``.

    Used for LAST_STRIDE on single-path networks (MobileNet, EfficientNet) whose last
    down-sampling happens in one conv. Raises when there is no stride-2 conv.
    """
    if stride == 2:
        return
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    if not convs:
        raise ValueError("No stride-2 convolution found to apply MODEL.BACKBONE.LAST_STRIDE to.")
    convs[-1].stride = (stride, stride)
