"""Heads turn a backbone feature map into features (eval) or classifier outputs (training)."""

from .build import REID_HEADS_REGISTRY, build_heads
from .clas_head import ClasHead
from .embedding_head import EmbeddingHead

__all__ = ["REID_HEADS_REGISTRY", "build_heads", "EmbeddingHead", "ClasHead"]
