"""Pairwise distances between feature sets, computed one block of rows at a time."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

__all__ = ["as_feature_tensor", "pairwise_distance", "squared_norms", "METRICS"]

METRICS = ("cosine", "euclidean")

ArrayLike = Union[np.ndarray, torch.Tensor]


def as_feature_tensor(features: ArrayLike, name: str = "features") -> torch.Tensor:
    """``features`` as a float32 CPU tensor of shape (N, D), without a copy when possible."""
    tensor = torch.as_tensor(features)
    if tensor.dim() != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array; got shape {tuple(tensor.shape)}.")
    if tensor.dtype != torch.float32:
        tensor = tensor.float()
    return tensor


def check_metric(metric: str) -> str:
    metric = metric.lower()
    if metric not in METRICS:
        raise ValueError(f"Unknown distance metric '{metric}'; use one of {METRICS} (TEST.METRIC).")
    return metric


def squared_norms(features: torch.Tensor) -> torch.Tensor:
    """Row-wise squared L2 norms (N,) of a (N, D) tensor."""
    return (features * features).sum(dim=1)


def pairwise_distance(
    query: torch.Tensor,
    gallery: torch.Tensor,
    metric: str = "cosine",
    query_sq_norms: torch.Tensor = None,
    gallery_sq_norms: torch.Tensor = None,
) -> torch.Tensor:
    """Distances (Q, G) float32 between ``query`` (Q, D) and ``gallery`` (G, D).

    cosine: ``1 - cos(q, g)`` (features need not be normalised); euclidean: ``||q - g||``.
    Pass precomputed squared norms to save work when the same gallery is used repeatedly.
    """
    metric = check_metric(metric)
    qn = squared_norms(query) if query_sq_norms is None else query_sq_norms
    gn = squared_norms(gallery) if gallery_sq_norms is None else gallery_sq_norms
    dots = query @ gallery.T
    if metric == "cosine":
        inv_q = qn.clamp_min(1e-24).rsqrt()
        inv_g = gn.clamp_min(1e-24).rsqrt()
        dots.mul_(inv_q[:, None]).mul_(inv_g[None, :])
        return dots.neg_().add_(1.0)
    dots.mul_(-2.0).add_(qn[:, None]).add_(gn[None, :])
    return dots.clamp_min_(0.0).sqrt_()
