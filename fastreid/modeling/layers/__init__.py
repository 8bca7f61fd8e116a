from .batch_norm import BatchNorm, FrozenBatchNorm, GhostBatchNorm, get_norm

__all__ = ["BatchNorm", "FrozenBatchNorm", "GhostBatchNorm", "get_norm"]
