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
    bb = cfg.MODEL.BACKBONE
    if str(cfg.MODEL.HEADS.POOL_LAYER).lower() == "flatten":
        # The head flattens the whole map: FEAT_DIM is channels x cells (the face models'
        # convention), which depends on the input size; builders that know it check exactly.
        if wanted <= 0 or wanted % feat_dim:
            raise ValueError(
                f"MODEL.BACKBONE.FEAT_DIM is {wanted} but {bb.NAME} with DEPTH {bb.DEPTH!r} "
                f"outputs {feat_dim} channels; with MODEL.HEADS.POOL_LAYER Flatten, FEAT_DIM is "
                f"{feat_dim} x the cells of the final feature map (e.g. {feat_dim * 16} for a "
                "4x4 map)."
            )
        return model
    if wanted != feat_dim:
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
