"""What the core reads from backbones and heads without knowing their class: the declared
seams a new backbone or head (a project's, too) provides. Everything else is read through
these, never by class name and never by an undeclared ``getattr``.
"""

from __future__ import annotations

from typing import List, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

__all__ = [
    "STAGE_FEATURE_MEMBERS",
    "Backbone",
    "Head",
    "StageFeatureBackbone",
    "accepts_camids",
    "missing_members",
]


@runtime_checkable
class Backbone(Protocol):
    """``forward(x) -> (B, feat_dim, h, w)``. A backbone that uses camera ids also sets the
    class attribute ``accepts_camids = True`` and takes ``forward(x, camids=None)``."""

    feat_dim: int


@runtime_checkable
class StageFeatureBackbone(Protocol):
    """Pre-ReLU features of every stage, for feature distillation (``DistillerOverhaul``)."""

    stage_channels: Sequence[int]

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]: ...

    def get_bn_before_relu(self) -> List[nn.Module]: ...


STAGE_FEATURE_MEMBERS = ("forward_stages", "get_bn_before_relu", "stage_channels")


@runtime_checkable
class Head(Protocol):
    """A re-ID head: ``in_channels`` (the backbone's feat_dim it expects), ``feat_dim`` (its
    output feature width), ``metric_feat_dim`` (the width the metric losses see) and
    ``num_classes`` (0 without a classifier)."""

    in_channels: int
    feat_dim: int
    num_classes: int

    @property
    def metric_feat_dim(self) -> int: ...


def accepts_camids(backbone: nn.Module) -> bool:
    """Whether ``backbone.forward`` takes ``camids=`` (see :class:`Backbone`)."""
    return bool(getattr(backbone, "accepts_camids", False))


def missing_members(obj: object, members: Sequence[str]) -> List[str]:
    """The names of ``members`` that ``obj`` lacks (to name them in an error)."""
    return [name for name in members if not hasattr(obj, name)]
