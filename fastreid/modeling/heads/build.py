"""The head registry and the one place heads are built from a config."""

from __future__ import annotations

from torch import nn

from fastreid.config import CfgNode
from fastreid.utils.registry import Registry

__all__ = ["REID_HEADS_REGISTRY", "build_heads"]

REID_HEADS_REGISTRY = Registry("HEADS")
REID_HEADS_REGISTRY.__doc__ = """
Registry of heads: classes built as ``Head(cfg)``.

A head takes the backbone's feature map ``(B, C, h, w)``. In training,
``head(features, targets)`` returns a dict with ``cls_outputs`` (logits with margin),
``pred_class_logits`` (margin-free, scaled) and ``features`` (for the metric losses); in
eval ``head(features)`` returns the feature tensor ``(B, D)``.
"""


def build_heads(cfg: CfgNode) -> nn.Module:
    """Build the head named by ``cfg.MODEL.HEADS.NAME``."""
    return REID_HEADS_REGISTRY.get(cfg.MODEL.HEADS.NAME)(cfg)
