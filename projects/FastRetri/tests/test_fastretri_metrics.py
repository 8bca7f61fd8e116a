"""Recall@K and MAP@R against a plain per-query reference; self-retrieval by index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from projects.FastRetri.fastretri.metrics import nearest_neighbors, retrieval_metrics


def reference_metrics(q, ql, g=None, gl=None, recalls=(1, 2, 4, 8)):
    """One query at a time: sort every candidate by cosine similarity, drop the query itself."""
    self_retrieval = g is None
    if self_retrieval:
        g, gl = q, ql
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    hits = {k: [] for k in recalls}
    aps = []
    for i in range(len(q)):
        sim = gn @ qn[i]
        candidates = [j for j in range(len(g)) if not (self_retrieval and j == i)]
        order = sorted(candidates, key=lambda j: -sim[j])
        rel = [gl[j] == ql[i] for j in order]
        for k in recalls:
            hits[k].append(any(rel[:k]))
        big_r = sum(rel)
        if big_r:
            precision_sum, found = 0.0, 0
            for rank, is_rel in enumerate(rel[:big_r], start=1):
                if is_rel:
                    found += 1
                    precision_sum += found / rank
            aps.append(precision_sum / big_r)
    out = {f"Recall@{k}": 100 * float(np.mean(hits[k])) for k in recalls}
    out["MAP@R"] = 100 * float(np.mean(aps))
    return out


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("chunk", [7, 1000])
def test_self_retrieval_matches_reference(backend, chunk):
    pytest.importorskip("faiss") if backend == "faiss" else None
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 90)
    centers = rng.normal(size=(6, 8))
    feats = centers[labels] + rng.normal(scale=1.2, size=(90, 8))
    ours, no_match = retrieval_metrics(
        torch.tensor(feats),
        torch.tensor(labels),
        recalls=(1, 2, 4, 8),
        chunk_size=chunk,
        backend=backend,
    )
    ref = reference_metrics(feats, labels)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key
    assert 0 < ours["Recall@1"] < ours["Recall@8"] < 100  # the case is not trivial
    assert no_match == 0


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_query_gallery_matches_reference(backend):
    pytest.importorskip("faiss") if backend == "faiss" else None
    rng = np.random.default_rng(1)
    ql, gl = rng.integers(0, 5, 40), rng.integers(0, 5, 70)
    centers = rng.normal(size=(5, 6))
    q = centers[ql] + rng.normal(scale=1.0, size=(40, 6))
    g = centers[gl] + rng.normal(scale=1.0, size=(70, 6))
    ours, _ = retrieval_metrics(
        torch.tensor(q),
        torch.tensor(ql),
        torch.tensor(g),
        torch.tensor(gl),
        recalls=(1, 10, 20),
        chunk_size=9,
        backend=backend,
    )
    ref = reference_metrics(q, ql, g, gl, recalls=(1, 10, 20))
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_exact_duplicate_of_another_class_is_not_taken_for_the_query(backend):
    # Rows 0 and 1 are identical but of different classes; row 2 (class 0) is near row 0.
    # Excluding "the first hit" could drop row 1 instead of row 0 and score a false hit;
    # by index, query 0's nearest other item is row 1 (class 1): a miss.
    pytest.importorskip("faiss") if backend == "faiss" else None
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 0, 1])
    index = nearest_neighbors(
        torch.nn.functional.normalize(feats),
        torch.nn.functional.normalize(feats),
        1,
        torch.arange(4),
        backend,
    )
    assert index[0, 0] == 1 and index[1, 0] == 0
    metrics, _ = retrieval_metrics(feats, labels, recalls=(1,), backend=backend)
    # query 0 -> 1 (miss), 1 -> 0 (miss), 2 -> 0 or 1 (tie, both at cos 0.99; 0 hits), 3 -> 2 or
    # 0/1: row 3 is closest to row 2 (cos 0.11) -> class 0, a miss.
    assert metrics["Recall@1"] <= 25.0


def test_many_duplicates_still_exclude_only_the_query():
    # Every row identical: the own index may fall outside the k+1 faiss results; each row must
    # still return k other rows, none of them itself.
    pytest.importorskip("faiss")
    feats = torch.nn.functional.normalize(torch.ones(12, 4))
    for backend in ("torch", "faiss"):
        index = nearest_neighbors(feats, feats, 3, torch.arange(12), backend)
        assert index.shape == (12, 3)
        assert not (index == torch.arange(12)[:, None]).any()


def test_map_at_r_known_answer():
    # Query 0 (class 0) has R=2 relevant items; its ranking is [rel, irrelevant, rel]:
    # MAP@R = (1/2) * (1/1) = 0.5 (the relevant item at rank 3 lies beyond R).
    q = torch.tensor([[1.0, 0.0]])
    g = torch.tensor([[1.0, 0.0], [0.9, 0.43], [0.7, 0.71], [0.0, 1.0]])
    metrics, _ = retrieval_metrics(
        q, torch.tensor([0]), g, torch.tensor([0, 1, 0, 1]), recalls=(1, 2)
    )
    assert metrics["MAP@R"] == pytest.approx(50.0)
    assert metrics["Recall@1"] == 100.0


def test_recalls_larger_than_the_gallery_is_one_clear_error():
    feats, labels = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match=r"TEST.RECALLS has \[8\].*only 4 images"):
        retrieval_metrics(feats, labels, recalls=(1, 8))


def test_queries_without_relevant_items_count_as_misses():
    # Rows 0 and 1 (class 0) find each other; row 2 is the only image of class 1.
    feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    metrics, no_match = retrieval_metrics(feats, torch.tensor([0, 0, 1]), recalls=(1,))
    assert no_match == 1
    assert metrics["Recall@1"] == pytest.approx(200 / 3)
    assert metrics["MAP@R"] == pytest.approx(100.0)  # averaged over the queries that have R > 0
