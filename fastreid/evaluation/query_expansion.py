"""Alpha-weighted query expansion (alpha-QE, Radenovic et al., TPAMI 2018)."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from .distance import as_feature_tensor

__all__ = ["aqe"]


def aqe(
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    qe_times: int = 1,
    qe_k: int = 5,
    alpha: float = 3.0,
    chunk_size: int = 512,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Replace every feature by the similarity-weighted mean of its ``qe_k`` neighbours.

    Query and gallery features are both expanded (database-side augmentation), each
    against the union of query and gallery, ``qe_times`` times. The weight of a neighbour
    is ``max(cos, 0) ** alpha`` (the feature itself is its first neighbour, weight 1).
    Neighbours are found one chunk of rows at a time, so memory is O(chunk_size x N).

    Args:
        query_features (Q, D), gallery_features (G, D).
    Returns:
        expanded, L2-normalised query (Q, D) and gallery (G, D) features, float32.
    """
    query = as_feature_tensor(query_features, "query_features")
    gallery = as_feature_tensor(gallery_features, "gallery_features")
    if qe_k <= 0 or qe_times < 0:
        raise ValueError(f"TEST.AQE.QE_K must be > 0 and QE_TIME >= 0; got {qe_k}, {qe_times}.")
    features = F.normalize(torch.cat([query, gallery]), dim=1)
    k = min(qe_k, len(features))
    for _ in range(qe_times):
        expanded = torch.empty_like(features)
        for start in range(0, len(features), chunk_size):
            block = features[start : start + chunk_size]
            similarity, index = torch.topk(block @ features.T, k, dim=1)
            weights = similarity.clamp_min(0.0).pow(alpha)
            expanded[start : start + len(block)] = torch.einsum(
                "ck,ckd->cd", weights, features[index]
            )
        features = F.normalize(expanded, dim=1)
    return features[: len(query)], features[len(query) :]
