"""AttrHead: pooling -> BNNeck -> linear -> BatchNorm1d on the logits; sigmoid at eval."""

from __future__ import annotations

from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from fastreid.modeling.heads import REID_HEADS_REGISTRY, EmbeddingHead
from fastreid.modeling.heads.embedding_head import init_weights_kaiming

__all__ = ["AttrHead"]


@REID_HEADS_REGISTRY.register()
class AttrHead(EmbeddingHead):
    """The attribute head of FastReID's FastAttr (same module names, so its weights load).

    On top of :class:`EmbeddingHead`'s pooling and BNNeck: ``logits = linear(neck, weight)``
    (no bias), then ``bnneck`` = ``BatchNorm1d(num_classes)`` on the logits (the strong
    baseline's classifier). ``CLS_LAYER``, ``SCALE`` and ``MARGIN`` play no part.

    * training -> ``{"cls_outputs": logits, "pred_class_logits": logits, "features": neck}``,
      logits ``(B, num_attributes)``;
    * eval -> attribute probabilities ``sigmoid(logits)`` ``(B, num_attributes)``;
      ``with_logits=True`` -> ``{"features", "pred_class_logits"}``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bnneck = nn.BatchNorm1d(self.num_classes)
        self.bnneck.apply(init_weights_kaiming)

    def attribute_logits(self, features: torch.Tensor) -> Dict[str, torch.Tensor]:
        neck = self.bottleneck(self.pool_layer(features))[..., 0, 0]
        logits = self.bnneck(F.linear(neck, self.weight))
        return {"features": neck, "logits": logits}

    def forward(
        self,
        features: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        *,
        with_logits: bool = False,
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        self._check_trainable()
        out = self.attribute_logits(features)
        if not self.training:
            if with_logits:
                return {"features": out["features"], "pred_class_logits": out["logits"]}
            return torch.sigmoid(out["logits"])
        return {
            "cls_outputs": out["logits"],
            "pred_class_logits": out["logits"],
            "features": out["features"],
        }
