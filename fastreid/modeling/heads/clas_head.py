"""ClasHead: the EmbeddingHead for classification tasks (returns class logits in eval too)."""

from __future__ import annotations

from typing import Dict, Optional, Union

import torch

from .build import REID_HEADS_REGISTRY
from .embedding_head import EmbeddingHead

__all__ = ["ClasHead"]


@REID_HEADS_REGISTRY.register()
class ClasHead(EmbeddingHead):
    """Same modules and arguments as :class:`EmbeddingHead`; built the same two ways.

    * training -> dict with ``cls_outputs``, ``pred_class_logits`` ``(B, num_classes)`` and
      ``features`` (the neck output ``(B, D)``).
    * eval -> margin-free logits times the scale ``(B, num_classes)`` (softmax gives class
      probabilities); with ``with_logits=True`` ``{"features", "pred_class_logits"}``.
    """

    @property
    def metric_feat_dim(self) -> int:
        return self.feat_dim  # the training features are always the neck output

    def forward(
        self,
        features: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        *,
        with_logits: bool = False,
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        self._check_trainable()
        neck_feat = self.bottleneck(self.pool_layer(features))
        neck_feat = torch.flatten(neck_feat, 1)
        logits = self.class_logits(neck_feat)

        if not self.training:
            if with_logits:
                return {"features": neck_feat, "pred_class_logits": logits * self.cls_layer.s}
            return logits * self.cls_layer.s

        return {
            "cls_outputs": self.cls_layer(logits, targets),
            "pred_class_logits": logits * self.cls_layer.s,
            "features": neck_feat,
        }
