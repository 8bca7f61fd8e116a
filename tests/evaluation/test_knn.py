"""One nearest-neighbour policy: auto is faiss only where faiss runs on a GPU; faiss and torch
give the same neighbours (checked against a plain argsort) in both search entry points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastreid.evaluation import knn, topk_search


def _features(n, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)


def test_auto_takes_faiss_only_on_a_gpu(monkeypatch):
    monkeypatch.setattr(knn, "faiss_gpu_available", lambda: False)
    assert knn.resolve_knn_backend("auto") == "torch"
    monkeypatch.setattr(knn, "faiss_gpu_available", lambda: True)
    assert knn.resolve_knn_backend("auto") == "faiss"
    assert knn.resolve_knn_backend("torch") == "torch"
    with pytest.raises(ValueError, match="use one of auto, faiss, torch"):
        knn.resolve_knn_backend("annoy")
    monkeypatch.setattr(knn, "faiss_module", lambda: None)
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[faiss\]\""):
        knn.resolve_knn_backend("faiss")


def _plain_topk(query, gallery, k, metric):
    if metric == "cosine":
        dist = 1 - query.numpy() @ gallery.numpy().T
    else:
        dist = ((query.numpy()[:, None] - gallery.numpy()[None]) ** 2).sum(-1) ** 0.5
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_topk_search_backends_agree_with_a_plain_sort(backend, metric):
    if backend == "faiss":
        pytest.importorskip("faiss")
    query, gallery = _features(9, seed=1), _features(50, seed=2) * 1.5
    distances, index = topk_search(query, gallery, 7, metric=metric, block_size=16, backend=backend)
    np.testing.assert_array_equal(index, _plain_topk(query, gallery, 7, metric))
    assert np.all(np.diff(distances, axis=1) >= -1e-6)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_nearest_neighbors_backends_agree_and_leave_out_the_query_itself(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    feats = _features(30, seed=3)
    found = knn.nearest_neighbors(feats, feats, 4, torch.arange(30), backend=backend)
    expected = _plain_topk(feats, feats, 5, "cosine")[:, 1:]  # the first is the query itself
    np.testing.assert_array_equal(found.numpy(), expected)
