"""FaceHead and FaceBaseline: the face model around the iResNet backbone."""

from __future__ import annotations

from typing import Any, Dict, Union

import torch
from torch import nn

from fastreid.config import CfgNode, configurable
from fastreid.modeling.backbones.build import BACKBONE_REGISTRY
from fastreid.modeling.heads.build import REID_HEADS_REGISTRY, build_heads
from fastreid.modeling.heads.embedding_head import EmbeddingHead
from fastreid.modeling.meta_arch.baseline import Baseline, loss_kwargs_from_config
from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY

__all__ = ["FaceHead", "FaceBaseline", "face_input_size"]


def face_input_size(cfg: CfgNode) -> int:
    """The face crop side: ``INPUT.SIZE_TRAIN`` when set, else 112 (FastFace's ``[0]`` means
    "no resize", i.e. the 112x112 crops of the insightface sets)."""
    size = [int(s) for s in cfg.INPUT.SIZE_TRAIN if int(s) > 0]
    return size[0] if size else 112


@REID_HEADS_REGISTRY.register()
class FaceHead(EmbeddingHead):
    """EmbeddingHead for faces: ``Flatten`` pooling -> 1x1 conv (the FC) -> BN with a frozen
    bias. With ``pfc=True`` the class centres live in :class:`PartialFC` instead, so the head
    has no ``weight`` and returns the embedding in training too (``{"features": (B, D)}``)."""

    @configurable
    def __init__(self, *, pfc: bool = False, **kwargs: Any) -> None:
        if pfc:
            kwargs["num_classes"] = 0
        super().__init__(**kwargs)
        self.pfc = bool(pfc)
        if self.pfc:
            del self.weight

    @property
    def no_logits_hint(self) -> str:
        """Why a PartialFC head gives no class logits (a distillation teacher needs them)."""
        if not self.pfc:
            return ""
        return (
            "This face model was trained with MODEL.HEADS.PFC.ENABLED: its class centres live "
            "in PartialFC's per-process shards, not in the model. Train the teacher with "
            "MODEL.HEADS.PFC.ENABLED False (its CosFace / ArcFace centres then stay in the model)."
        )

    def reset_parameters(self) -> None:
        self.bottleneck.apply(_init_face_neck)
        if isinstance(getattr(self, "weight", None), nn.Parameter) and self.weight.numel() > 0:
            nn.init.normal_(self.weight, std=0.01)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        args = EmbeddingHead.from_config(cfg)
        args["pfc"] = bool(cfg.MODEL.HEADS.PFC.ENABLED)
        return args

    def forward(
        self,
        features: torch.Tensor,
        targets: Union[torch.Tensor, None] = None,
        *,
        with_logits: bool = False,
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        if not self.pfc:
            return super().forward(features, targets, with_logits=with_logits)
        if with_logits:
            raise ValueError(self.no_logits_hint)
        neck_feat = self.bottleneck(self.pool_layer(features))[..., 0, 0]
        return neck_feat if not self.training else {"features": neck_feat}


def _init_face_neck(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.01)
    elif isinstance(module, nn.modules.batchnorm._NormBase) and module.affine:
        with torch.no_grad():
            module.weight.fill_(1.0)
            module.bias.zero_()


def _build_face_backbone(cfg: CfgNode) -> nn.Module:
    """The backbone, checked against the flattened ``FEAT_DIM`` the FaceHead expects."""
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg)
    side = face_input_size(cfg)
    out = side
    for _ in range(4):  # four stride-2 3x3 convs with padding 1: ceil(n / 2) each
        out = (out + 1) // 2
    cells = out**2 if cfg.MODEL.HEADS.POOL_LAYER in ("Flatten", "flatten") else 1
    want = int(backbone.feat_dim) * cells
    if int(cfg.MODEL.BACKBONE.FEAT_DIM) != want:
        raise ValueError(
            f"MODEL.BACKBONE.FEAT_DIM is {cfg.MODEL.BACKBONE.FEAT_DIM} but "
            f"{cfg.MODEL.BACKBONE.NAME} (DEPTH {cfg.MODEL.BACKBONE.DEPTH}) gives {want} features "
            f"per {side}x{side} face ({backbone.feat_dim} channels x {cells} cells with "
            f"{cfg.MODEL.HEADS.POOL_LAYER}); set MODEL.BACKBONE.FEAT_DIM {want}."
        )
    return backbone


@META_ARCH_REGISTRY.register()
class FaceBaseline(Baseline):
    """Baseline for faces.

    * PFC off: exactly :class:`Baseline` (the head's margin softmax + ``MODEL.LOSSES``).
    * PFC on, training: returns ``{"features": (B, D), "targets": (B,)}``; the trainer feeds
      them to :class:`~projects.FastFace.fastface.partial_fc.PartialFC`, which holds the class
      centres outside the model (sharded over the processes).
    * eval: the embedding ``(B, D)``.
    """

    @configurable
    def __init__(self, *, pfc: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pfc = bool(pfc)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        return {
            "backbone": _build_face_backbone(cfg),
            "heads": build_heads(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_kwargs": loss_kwargs_from_config(cfg),
            "pfc": bool(cfg.MODEL.HEADS.PFC.ENABLED),
        }

    def forward(self, batched_inputs: Any) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        if not (self.pfc and self.training):
            return super().forward(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        features = self.heads(self.backbone(images))["features"]
        # The centre logits run in float32 even when the backbone ran under autocast.
        return {"features": features.float(), "targets": self.get_targets(batched_inputs)}
