"""Retrieval metrics: Recall@K and MAP@R over nearest neighbours found in bounded memory.

Neighbours come from the core's search (``fastreid.evaluation.knn``: faiss on a GPU, chunked
torch matrix products otherwise, or the ``backend`` asked for); either way only ``chunk_size`` queries are searched at
a time, so memory stays at O(chunk_size x (gallery + k)) whatever the number of queries. The
torch path finds each query's first relevant rank without sorting (Recall@K) and sorts only
the R nearest items MAP@R needs.
In self-retrieval (the gallery is the query set) each query is removed from its own results
by its index, never by assuming it is its own first neighbour (duplicates and ties would
break that).

MAP@R is Musgrave et al. 2020 ("A Metric Learning Reality Check"): for a query with R
relevant gallery items, ``(1/R) * sum_{i<=R} P@i * rel_i`` over its R nearest neighbours.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from fastreid.evaluation.knn import KNN_BACKENDS, nearest_neighbors, resolve_knn_backend

__all__ = ["BACKENDS", "nearest_neighbors", "retrieval_metrics"]

logger = logging.getLogger(__name__)

BACKENDS = KNN_BACKENDS


def _torch_chunk(
    query: torch.Tensor,
    gallery: torch.Tensor,
    q_labels: torch.Tensor,
    g_labels: torch.Tensor,
    own: Optional[torch.Tensor],
    k_map: int,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """For a chunk of queries: the rank of the first relevant gallery item (1-based; beyond
    the gallery when there is none) and the ``k_map`` nearest gallery indices.

    The first-hit rank is 1 + the number of irrelevant items more similar than the most
    similar relevant one, so Recall@K for every K needs no sort (SOP asks for K = 1000).
    """
    scores = query.float() @ gallery.float().T  # (n, G)
    relevant = g_labels[None, :] == q_labels[:, None]
    if own is not None:
        rows = torch.arange(len(query))
        scores[rows, own] = float("-inf")
        relevant[rows, own] = False
    best_relevant = torch.where(relevant, scores, float("-inf")).amax(dim=1)
    beaten_by = ((scores > best_relevant[:, None]) & ~relevant).sum(dim=1)
    first_hit = torch.where(relevant.any(dim=1), beaten_by + 1, len(gallery) + 1)
    index = scores.topk(k_map, dim=1).indices if k_map > 0 else scores[:, :0].long()
    return first_hit, index


def retrieval_metrics(
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_features: Optional[torch.Tensor] = None,
    gallery_labels: Optional[torch.Tensor] = None,
    recalls: Sequence[int] = (1, 2, 4, 8),
    chunk_size: int = 256,
    backend: str = "auto",
    map_at_r: bool = True,
) -> Tuple[Dict[str, float], int]:
    """Recall@K (percent) for each K in ``recalls`` and MAP@R (percent) by cosine similarity.

    Without a gallery the query set is searched against itself, each query excluded by
    index. Recall@K counts every query (a query without a relevant item scores 0); MAP@R
    averages over the queries that have at least one relevant item.

    Returns (metrics, number of queries without any relevant gallery item).
    """
    self_retrieval = gallery_features is None
    query = F.normalize(query_features.float(), dim=1)
    gallery = query if self_retrieval else F.normalize(gallery_features.float(), dim=1)
    q_labels = query_labels.long().cpu()
    g_labels = q_labels if self_retrieval else gallery_labels.long().cpu()
    if len(query) == 0:
        raise ValueError("Retrieval evaluation got no query features.")
    num_candidates = len(gallery) - (1 if self_retrieval else 0)
    recalls = [int(k) for k in recalls]
    too_large = [k for k in recalls if k > num_candidates or k < 1]
    if too_large:
        what = "the test set minus the query" if self_retrieval else "the gallery"
        raise ValueError(
            f"TEST.RECALLS has {too_large}, but {what} holds only {num_candidates} images; "
            f"use values from 1 to {num_candidates}."
        )
    # R per query: gallery items with the query's label (itself excluded in self-retrieval).
    uniq, counts = torch.unique(g_labels, return_counts=True)
    position = torch.searchsorted(uniq, q_labels).clamp_max(len(uniq) - 1)
    num_relevant = torch.where(uniq[position] == q_labels, counts[position], 0)
    if self_retrieval:
        num_relevant = num_relevant - 1
    backend = resolve_knn_backend(backend)
    k_map = min(int(num_relevant.max()), num_candidates) if map_at_r else 0
    hits_at = {r: 0 for r in recalls}
    map_sum, map_count = 0.0, 0
    for start in range(0, len(query), chunk_size):
        stop = min(start + chunk_size, len(query))
        own = torch.arange(start, stop) if self_retrieval else None
        labels = q_labels[start:stop]
        if backend == "torch":
            first_hit, index = _torch_chunk(
                query[start:stop], gallery, labels, g_labels, own, k_map
            )
        else:
            # faiss: the max(K) nearest neighbours answer Recall@K, the first R answer MAP@R.
            index = nearest_neighbors(
                query[start:stop], gallery, max(max(recalls), k_map), own, backend
            ).cpu()
            relevant = g_labels[index] == labels[:, None]
            ranks = torch.where(relevant, torch.arange(1, index.shape[1] + 1), index.shape[1] + 1)
            first_hit = ranks.min(dim=1).values
            index = index[:, :k_map]
        for r in recalls:
            hits_at[r] += int((first_hit <= r).sum())
        if map_at_r and k_map > 0:
            rel = g_labels[index] == labels[:, None]  # (n, k_map), nearest first
            big_r = num_relevant[start:stop]
            ranks = torch.arange(1, k_map + 1)
            rel &= ranks[None, :] <= big_r[:, None]
            precision = rel.cumsum(dim=1).double() / ranks
            ap = (precision * rel).sum(dim=1) / big_r.clamp_min(1)
            valid = big_r > 0
            map_sum += float(ap[valid].sum())
            map_count += int(valid.sum())
    metrics = {f"Recall@{r}": hits_at[r] / len(query) * 100 for r in recalls}
    if map_at_r:
        metrics["MAP@R"] = map_sum / max(map_count, 1) * 100
    return metrics, int((num_relevant <= 0).sum())
