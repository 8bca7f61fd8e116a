"""The backbone registry and the one place backbones are built from a config."""

from __future__ import annotations

from torch import nn

from fastreid.config import CfgNode
from fastreid.utils.registry import Registry

__all__ = ["BACKBONE_REGISTRY", "build_backbone", "check_feat_dim"]

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """
Registry of backbone builders: ``fn(cfg) -> nn.Module``.

A backbone takes images ``(B, 3, H, W)`` and returns a feature map ``(B, C, h, w)`` with
``C == backbone.feat_dim == cfg.MODEL.BACKBONE.FEAT_DIM``. Backbones that use camera ids set
``accepts_camids = True`` and take ``forward(x, camids=None)``.
"""


def check_feat_dim(cfg: CfgNode, model: nn.Module) -> nn.Module:
    """Raise a ``ValueError`` when ``cfg.MODEL.BACKBONE.FEAT_DIM`` differs from ``model.feat_dim``.

    Returns ``model`` so builders can end with ``return check_feat_dim(cfg, model)``.
    """
    feat_dim = getattr(model, "feat_dim", None)
    if not isinstance(feat_dim, int):
        raise TypeError(
            f"Backbone {type(model).__name__} has no int attribute 'feat_dim'; "
            "every backbone must state the channels of its output feature map."
        )
    wanted = int(cfg.MODEL.BACKBONE.FEAT_DIM)
    if wanted != feat_dim:
        bb = cfg.MODEL.BACKBONE
        raise ValueError(
            f"MODEL.BACKBONE.FEAT_DIM is {wanted} but {bb.NAME} with DEPTH {bb.DEPTH!r} outputs "
            f"{feat_dim} channels; set MODEL.BACKBONE.FEAT_DIM {feat_dim}."
        )
    return model


def build_backbone(cfg: CfgNode) -> nn.Module:
    """Build the backbone named by ``cfg.MODEL.BACKBONE.NAME`` (a registered builder)."""
    builder = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)
    model = builder(cfg)
    return check_feat_dim(cfg, model)
