"""EmbeddingHead: pooling -> optional 1x1 reduction -> optional BNNeck -> classifier."""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from fastreid.config import CfgNode, configurable
from fastreid.modeling.layers.any_softmax import CLASSIFIER_LAYERS
from fastreid.modeling.layers.batch_norm import get_norm
from fastreid.modeling.layers.pooling import build_pooling

from .build import REID_HEADS_REGISTRY

__all__ = ["EmbeddingHead", "init_weights_kaiming"]

NO_CLASSES_MESSAGE = (
    "The head has 0 classes and cannot train: set MODEL.HEADS.NUM_CLASSES or let the trainer "
    "fill it from the data."
)


def init_weights_kaiming(module: nn.Module) -> None:
    """Kaiming init for conv/linear layers, ones/zeros for affine norm layers (``module.apply``)."""
    if isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.modules.batchnorm._NormBase) and module.affine:
        with torch.no_grad():
            module.weight.fill_(1.0)
            module.bias.zero_()


@REID_HEADS_REGISTRY.register()
class EmbeddingHead(nn.Module):
    """The re-ID head of FastReID (BoT's BNNeck head) with FastReID's module names.

    Modules: ``pool_layer``; ``bottleneck`` = ``Sequential`` of an optional 1x1 conv without
    bias to ``embedding_dim`` (index 0) and an optional norm layer with a frozen bias (the
    BNNeck); the classifier weight ``weight`` ``(num_classes, feat_dim)``; ``cls_layer`` (a
    layer from ``any_softmax`` that applies margin and scale).

    Input: feature map ``(B, C, h, w)`` with ``C == in_channels``.

    * training, ``forward(features, targets)`` -> dict:
      ``cls_outputs`` ``(B, num_classes)`` logits with margin and scale (for the CE loss),
      ``pred_class_logits`` ``(B, num_classes)`` margin-free logits times the scale,
      ``features`` ``(B, D)`` for the metric losses: the pooled feature before the neck when
      ``neck_feat == "before"``, the neck output when ``"after"``.
    * eval, ``forward(features)`` -> the neck output ``(B, D)`` (``D == feat_dim``);
      ``forward(features, with_logits=True)`` -> ``{"features", "pred_class_logits"}``.
    """

    @configurable
    def __init__(
        self,
        *,
        feat_dim: int,
        num_classes: int,
        embedding_dim: int = 0,
        neck_feat: str = "before",
        pool_type: str = "GlobalAvgPool",
        cls_type: str = "Linear",
        scale: float = 1.0,
        margin: float = 0.0,
        with_bnneck: bool = True,
        norm_type: Union[str, None] = "BN",
    ) -> None:
        super().__init__()
        if neck_feat not in ("before", "after"):
            raise ValueError(
                f"MODEL.HEADS.NECK_FEAT must be 'before' or 'after', got {neck_feat!r}."
            )
        if cls_type not in CLASSIFIER_LAYERS:
            valid = ", ".join(k for k in CLASSIFIER_LAYERS if k[0].isupper())
            raise KeyError(f"Unknown MODEL.HEADS.CLS_LAYER '{cls_type}'; choose one of {valid}.")
        if num_classes < 0:
            raise ValueError(f"MODEL.HEADS.NUM_CLASSES must be >= 0, got {num_classes}.")
        self.in_channels = int(feat_dim)
        self.num_classes = int(num_classes)
        self.neck_feat = neck_feat

        self.pool_layer = build_pooling(pool_type)

        neck = []
        if embedding_dim > 0:
            neck.append(nn.Conv2d(feat_dim, embedding_dim, 1, 1, bias=False))
            feat_dim = embedding_dim
        if with_bnneck:
            neck.append(get_norm(norm_type, feat_dim, bias_freeze=True))
        self.bottleneck = nn.Sequential(*neck)
        self.feat_dim = int(feat_dim)

        self.cls_layer = CLASSIFIER_LAYERS[cls_type](num_classes, scale, margin)
        self.weight = nn.Parameter(torch.empty(num_classes, feat_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.bottleneck.apply(init_weights_kaiming)
        if self.weight.numel() > 0:
            nn.init.normal_(self.weight, std=0.01)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        heads = cfg.MODEL.HEADS
        return {
            "feat_dim": cfg.MODEL.BACKBONE.FEAT_DIM,
            "embedding_dim": heads.EMBEDDING_DIM,
            "num_classes": heads.NUM_CLASSES,
            "neck_feat": heads.NECK_FEAT,
            "pool_type": heads.POOL_LAYER,
            "cls_type": heads.CLS_LAYER,
            "scale": heads.SCALE,
            "margin": heads.MARGIN,
            "with_bnneck": heads.WITH_BNNECK,
            "norm_type": heads.NORM,
        }

    def class_logits(self, neck_feat: torch.Tensor) -> torch.Tensor:
        """Margin-free logits ``(B, num_classes)``: dot products for ``Linear``, cosines otherwise."""
        if not getattr(self.cls_layer, "cosine_logits", True):
            return F.linear(neck_feat, self.weight)
        return F.linear(F.normalize(neck_feat), F.normalize(self.weight))

    @property
    def metric_feat_dim(self) -> int:
        """Size of the training ``features`` the metric losses see (before or after the neck)."""
        return self.in_channels if self.neck_feat == "before" else self.feat_dim

    def _check_trainable(self) -> None:
        if self.num_classes == 0:
            raise RuntimeError(NO_CLASSES_MESSAGE)

    def forward(
        self,
        features: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        *,
        with_logits: bool = False,
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """See the class doc. ``with_logits`` (eval only) returns ``{"features": (B, D),
        "pred_class_logits": (B, num_classes)}`` instead of the bare features, so a model in
        eval mode (a distillation teacher) gives its margin-free logits too."""
        pool_feat = self.pool_layer(features)
        neck_feat = self.bottleneck(pool_feat)
        neck_feat = neck_feat[..., 0, 0]

        if not self.training:
            if not with_logits:
                return neck_feat
            self._check_trainable()
            return {
                "features": neck_feat,
                "pred_class_logits": self.class_logits(neck_feat) * self.cls_layer.s,
            }

        self._check_trainable()
        logits = self.class_logits(neck_feat)
        cls_outputs = self.cls_layer(logits, targets)
        feat = pool_feat[..., 0, 0] if self.neck_feat == "before" else neck_feat
        return {
            "cls_outputs": cls_outputs,
            "pred_class_logits": logits * self.cls_layer.s,
            "features": feat,
        }
