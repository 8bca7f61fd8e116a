"""Re-ranking against a dense implementation, AQE and the conventional TPR@FPR."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve

from fastreid.evaluation import KReciprocalDistance, aqe, evaluate_rank, tpr_at_fpr
from fastreid.evaluation.roc import RocAccumulator


def dense_k_reciprocal(qf, gf, k1, k2, lam):
    """Straightforward dense re-ranking (Zhong et al. 2017) on squared euclidean distances."""
    feats = np.concatenate([qf, gf]).astype(np.float64)
    num_query, num = len(qf), len(feats)
    dist = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    dist = dist / dist.max(axis=1, keepdims=True)
    rank = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(i, k):
        forward = rank[i, : k + 1]
        return np.array([j for j in forward if i in rank[j, : k + 1]])

    V = np.zeros((num, num))
    for i in range(num):
        base = reciprocal(i, k1)
        expansion = list(base)
        for c in base:
            cand = reciprocal(c, int(round(k1 / 2)))
            if len(np.intersect1d(cand, base)) > 2 / 3 * len(cand):
                expansion.extend(cand)
        expansion = np.unique(expansion)
        w = np.exp(-dist[i, expansion])
        V[i, expansion] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(axis=0) for i in range(num)])
    jaccard = np.zeros((num_query, num))
    for i in range(num_query):
        overlap = np.minimum(V[i][None, :], V).sum(axis=1)
        jaccard[i] = 1 - overlap / (2 - overlap)
    final = (1 - lam) * jaccard + lam * dist[:num_query]
    return final[:, num_query:]


def _features(seed=0, num_query=12, num_gallery=40, dim=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim))
    q_pids, g_pids = rng.integers(0, 6, num_query), rng.integers(0, 6, num_gallery)
    qf = centres[q_pids] + rng.normal(size=(num_query, dim))
    gf = centres[g_pids] + rng.normal(size=(num_gallery, dim))
    return qf.astype(np.float32), gf.astype(np.float32), q_pids, g_pids


@pytest.mark.parametrize("k1,k2,lam", [(6, 3, 0.3), (8, 1, 0.0)])
def test_sparse_rerank_equals_dense(k1, k2, lam):
    qf, gf, _, _ = _features()
    expected = dense_k_reciprocal(qf, gf, k1, k2, lam)
    ours = KReciprocalDistance(qf, gf, k1, k2, lam, metric="euclidean", chunk_size=5)
    np.testing.assert_allclose(ours.dense(), expected, atol=2e-5)
    np.testing.assert_allclose(ours(3, 9).numpy(), expected[3:9], atol=2e-5)


def test_rerank_feeds_evaluate_rank_chunk_by_chunk():
    qf, gf, q_pids, g_pids = _features(seed=1)
    q_cams, g_cams = np.zeros(len(q_pids), int), np.ones(len(g_pids), int)
    rerank = KReciprocalDistance(qf, gf, 6, 3, 0.3, chunk_size=4)
    lazy = evaluate_rank(rerank, q_pids, g_pids, q_cams, g_cams, max_rank=5, chunk_size=4)
    dense = evaluate_rank(rerank.dense(), q_pids, g_pids, q_cams, g_cams, max_rank=5)
    assert lazy.mAP == pytest.approx(dense.mAP)


def test_aqe_weights_neighbours_by_similarity_power():
    features = torch.nn.functional.normalize(torch.randn(10, 4), dim=1)
    query, gallery = aqe(features[:3], features[3:], qe_times=1, qe_k=3, alpha=2.0)
    sims = features @ features.T
    values, index = torch.topk(sims[0], 3)
    expected = (values.clamp_min(0) ** 2)[:, None] * features[index]
    expected = torch.nn.functional.normalize(expected.sum(0), dim=0)
    torch.testing.assert_close(query[0], expected, atol=1e-6, rtol=0)
    assert gallery.shape == (7, 4)


def test_tpr_at_fpr_matches_sklearn_roc_interpolation():
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(1.0, 1.0, 3000), rng.normal(-1.0, 1.0, 33333)
    fpr, tpr, _ = roc_curve(
        np.r_[np.ones(3000), np.zeros(33333)], np.r_[genuine, impostor], drop_intermediate=False
    )
    ours = tpr_at_fpr(genuine, impostor, (1e-4, 1e-3, 1e-2))
    for f in (1e-4, 1e-3, 1e-2):
        assert ours[f] == pytest.approx(np.interp(f, fpr, tpr), abs=1e-12)


def test_roc_genuine_pairs_are_positives_and_chunks_agree():
    # Perfectly separated scores: genuine pairs always closer -> TPR 1 at every FPR.
    rng = np.random.default_rng(1)
    q_pids, g_pids = np.arange(20) % 5, np.arange(200) % 5
    same = q_pids[:, None] == g_pids[None, :]
    dist = np.where(same, rng.uniform(0, 0.4, same.shape), rng.uniform(0.6, 1, same.shape))
    accumulator = RocAccumulator(q_pids, g_pids, np.zeros(20), np.ones(200))
    for start in range(0, 20, 6):
        accumulator.update(start, torch.from_numpy(dist[start : start + 6]))
    assert all(v == pytest.approx(1.0) for v in accumulator.compute().values())
    # Swapped (impostors closer): the conventional definition gives TPR 0 at small FPR.
    swapped = RocAccumulator(q_pids, g_pids, np.zeros(20), np.ones(200))
    swapped.update(0, torch.from_numpy(1 - dist))
    assert swapped.compute()[1e-2] == pytest.approx(0.0)
