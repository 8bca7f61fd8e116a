"""Nearest-neighbour search with one backend policy for every evaluator.

``backend``: ``"faiss"``, ``"torch"`` or ``"auto"``. ``auto`` takes faiss where it runs on a
GPU (faiss built with GPU support and CUDA present) and the chunked torch matrix products
otherwise: on CPUs faiss-cpu's k-selection measured about 3x slower than torch's topk for
10k x 10k with k = 1000 (projects/FastRetri/bench_retrieval.py). Both are exact searches.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from fastreid.utils.dependencies import MissingDependencyError, install_hint

__all__ = ["KNN_BACKENDS", "faiss_module", "nearest_neighbors", "resolve_knn_backend"]

KNN_BACKENDS = ("auto", "faiss", "torch")
# faiss's GPU k-selection handles at most this many neighbours.
FAISS_GPU_MAX_K = 2048


def faiss_module():
    """The faiss module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_gpu_available() -> bool:
    faiss = faiss_module()
    return (
        faiss is not None
        and hasattr(faiss, "knn_gpu")
        and torch.cuda.is_available()
        and getattr(faiss, "get_num_gpus", lambda: 0)() > 0
    )


def resolve_knn_backend(backend: str = "auto") -> str:
    """``"faiss"`` or ``"torch"`` for a backend setting (see the module docstring)."""
    if backend not in KNN_BACKENDS:
        raise ValueError(
            f"Unknown nearest-neighbour backend {backend!r}; use one of {', '.join(KNN_BACKENDS)}."
        )
    if backend == "auto":
        return "faiss" if faiss_gpu_available() else "torch"
    if backend == "faiss" and faiss_module() is None:
        raise MissingDependencyError(
            "The faiss nearest-neighbour backend needs faiss (fastreid's 'faiss' extra): "
            f"{install_hint('faiss')}; "
            "or use the torch backend."
        )
    return backend


def faiss_knn(
    query: np.ndarray, gallery: np.ndarray, k: int, inner_product: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """faiss's exact k-NN: (scores, indices int64), on the current GPU when faiss has one."""
    faiss = faiss_module()
    metric = faiss.METRIC_INNER_PRODUCT if inner_product else faiss.METRIC_L2
    if faiss_gpu_available() and k <= FAISS_GPU_MAX_K:  # the current device, not device 0
        scores, index = faiss.knn_gpu(
            faiss.StandardGpuResources(),
            query,
            gallery,
            k,
            metric=metric,
            device=torch.cuda.current_device(),
        )
    else:
        scores, index = faiss.knn(query, gallery, k, metric=metric)
    return scores, index.astype(np.int64)


def nearest_neighbors(
    query: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    query_index: Optional[torch.Tensor] = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Indices (Q, k) of the k most similar gallery rows (inner product) of each query row.

    ``query_index`` (Q,) gives, in self-retrieval, each query's own row in ``gallery``; that
    row is excluded from its results. Inputs should be L2-normalised for cosine similarity.
    """
    num_candidates = len(gallery) - (1 if query_index is not None else 0)
    if k > num_candidates:
        raise ValueError(f"k={k} neighbours asked but only {num_candidates} candidates exist.")
    if resolve_knn_backend(backend) == "faiss":
        extra = 1 if query_index is not None else 0
        _, found = faiss_knn(
            np.ascontiguousarray(query.float().cpu().numpy()),
            np.ascontiguousarray(gallery.float().cpu().numpy()),
            k + extra,
        )
        index = torch.from_numpy(found)
        if query_index is None:
            return index
        own = index == query_index.view(-1, 1).to(index.device)
        keep = ~own
        # A query that is not among its own k+1 neighbours (k+1 exact duplicates) loses the
        # last one instead, so every row keeps exactly k entries.
        keep[~own.any(dim=1), -1] = False
        return index[keep].view(len(query), k)
    scores = query.float() @ gallery.float().T
    if query_index is not None:
        scores[torch.arange(len(query)), query_index.to(scores.device)] = float("-inf")
    return scores.topk(k, dim=1).indices
