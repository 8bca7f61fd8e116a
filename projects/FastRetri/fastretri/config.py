"""FastRetri's config keys (FastReID's ``add_retri_config`` plus the search backend)."""

from __future__ import annotations

from fastreid.config import CfgNode

__all__ = ["add_retri_config"]


def add_retri_config(cfg: CfgNode) -> CfgNode:
    """Add ``TEST.RECALLS`` and ``TEST.RETRIEVAL_BACKEND`` to ``cfg`` and make
    ``RetriEvaluator`` the default ``TEST.EVALUATOR`` (call before merging a file)."""
    with cfg.unfrozen():
        # Recall@K is reported for each K; the first one is the model-selection metric.
        cfg.TEST.RECALLS = [1, 2, 4, 8, 16, 32]
        # Nearest-neighbour search: auto (faiss on a GPU when faiss-gpu is installed, else torch),
        # faiss (CPU or GPU) or torch.
        cfg.TEST.RETRIEVAL_BACKEND = "auto"
        cfg.TEST.EVALUATOR = "RetriEvaluator"  # the core's default is re-ID's
    return cfg
