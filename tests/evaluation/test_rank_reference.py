"""CMC, mAP and mINP against plain per-query references, on random data with ties.

The references below are written from the protocol definitions, one query at a time with
Python lists, sharing no code with ``fastreid.evaluation.rank``. Ties: a false match at
exactly a true match's distance ranks after it (the library's documented rule).
Single-shot (CUHK03) and VehicleID draws are random, so their references are the exact
expectations over all draws, which the averages over many draws must approach.
"""

import numpy as np
import pytest

from fastreid.evaluation import evaluate_rank, evaluate_repeated_draws, evaluate_single_shot

MAX_RANK = 10


def _kept(qp, qc, gp, gc):
    return qp >= 0 and gp >= 0 and not (qp == gp and qc == gc)


def _metrics_from_matches(matches):
    """(first-match rank, AP, INP) of a ranked list of booleans with at least one True."""
    hits, precisions = 0, []
    for rank, is_match in enumerate(matches, start=1):
        if is_match:
            hits += 1
            precisions.append(hits / rank)
    last = max(rank for rank, is_match in enumerate(matches, start=1) if is_match)
    return matches.index(True) + 1, sum(precisions) / hits, hits / last


def reference_market(distmat, q_pids, g_pids, q_cams, g_cams):
    firsts, aps, inps, skipped = [], [], [], 0
    for i in range(len(q_pids)):
        kept = [j for j in range(len(g_pids)) if _kept(q_pids[i], q_cams[i], g_pids[j], g_cams[j])]
        order = sorted(kept, key=lambda j: (distmat[i][j], g_pids[j] != q_pids[i]))
        matches = [g_pids[j] == q_pids[i] for j in order]
        if not any(matches):
            skipped += 1
            continue
        first, ap, inp = _metrics_from_matches(matches)
        firsts.append(first)
        aps.append(ap)
        inps.append(inp)
    cmc = [np.mean([f <= k for f in firsts]) for k in range(1, MAX_RANK + 1)]
    return np.array(cmc), np.mean(aps), np.mean(inps), skipped


def _labels(rng, num, num_ids, num_cams):
    pids = rng.integers(0, num_ids, num)  # 0 is a distractor identity
    pids[rng.random(num) < 0.1] = -1  # junk
    return pids, rng.integers(0, num_cams, num)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_market_protocol_matches_the_reference_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    q_pids, q_cams = _labels(rng, 30, 8, 3)
    g_pids, g_cams = _labels(rng, 120, 8, 3)
    distmat = rng.integers(0, 6, (30, 120)).astype(np.float64)  # six values: ties everywhere
    result = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=MAX_RANK, chunk_size=7)
    cmc, mAP, mINP, skipped = reference_market(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
    assert result.mAP == pytest.approx(mAP, abs=1e-12)
    assert result.mINP == pytest.approx(mINP, abs=1e-12)
    assert result.num_skipped == skipped


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_market_protocol_from_features_matches_the_reference(metric):
    rng = np.random.default_rng(5)
    q_pids, q_cams = _labels(rng, 25, 6, 2)
    g_pids, g_cams = _labels(rng, 90, 6, 2)
    centres = rng.normal(size=(6, 8))
    qf = centres[q_pids.clip(0)] + rng.normal(size=(25, 8))
    gf = centres[g_pids.clip(0)] + rng.normal(size=(90, 8))
    if metric == "cosine":
        qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        distmat = 1 - qn @ gn.T
    else:
        distmat = np.sqrt(((qf[:, None] - gf[None]) ** 2).sum(-1))
    result = evaluate_rank(
        None, q_pids, g_pids, q_cams, g_cams, max_rank=MAX_RANK,
        query_features=qf.astype(np.float32), gallery_features=gf.astype(np.float32),
        metric=metric,
    )  # fmt: skip
    cmc, mAP, mINP, _ = reference_market(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-6)
    assert result.mAP == pytest.approx(mAP, abs=1e-5)
    assert result.mINP == pytest.approx(mINP, abs=1e-5)


def _rank_distribution(probabilities):
    """P(rank = r), r = 1.., when each other identity independently comes first with p_d."""
    dist = [1.0]
    for p in probabilities:
        dist = [
            (dist[r] if r < len(dist) else 0.0) * (1 - p) + (dist[r - 1] * p if r >= 1 else 0.0)
            for r in range(len(dist) + 1)
        ]
    return dist  # dist[r] = P(r identities before the true one) -> rank r + 1


def _expected_single_match(true_distances, others):
    """Expected (CMC (MAX_RANK,), AP = INP) of a query with one drawn true match.

    ``true_distances``: distances of the entries the true match is drawn from (uniformly);
    ``others``: per other identity, the distances of the entries one is drawn from.
    """
    cmc, ap = np.zeros(MAX_RANK), 0.0
    for d_true in true_distances:
        before = [np.mean([d < d_true for d in entries]) for entries in others]
        dist = _rank_distribution(before)
        for r, p in enumerate(dist):
            rank = r + 1
            ap += p / rank / len(true_distances)
            cmc[rank - 1 :] += p / len(true_distances) if rank <= MAX_RANK else 0.0
    return cmc, ap


def test_cuhk03_single_shot_approaches_the_exact_expectation():
    rng = np.random.default_rng(3)
    q_pids, q_cams = _labels(rng, 12, 6, 3)
    g_pids, g_cams = _labels(rng, 50, 6, 3)
    distmat = rng.integers(0, 8, (12, 50)).astype(np.float64)
    result = evaluate_single_shot(
        distmat, q_pids, g_pids, q_cams, g_cams, max_rank=MAX_RANK, num_repeats=400, seed=1
    )
    cmcs, aps = [], []
    for i in range(12):
        kept = {}
        for j in range(50):
            if _kept(q_pids[i], q_cams[i], g_pids[j], g_cams[j]):
                kept.setdefault(g_pids[j], []).append(distmat[i][j])
        if q_pids[i] not in kept:
            continue  # no true match: skipped
        others = [d for pid, d in kept.items() if pid != q_pids[i]]
        cmc, ap = _expected_single_match(kept[q_pids[i]], others)
        cmcs.append(cmc)
        aps.append(ap)
    assert result.num_skipped == 12 - len(aps)
    # 400 draws x ~10 queries: the sampling error of each mean is below 0.01.
    cmc = np.mean(cmcs, axis=0)  # the CMC is cut at the gallery size
    np.testing.assert_allclose(result.cmc, cmc[: len(result.cmc)], atol=0.04)
    assert result.mAP == pytest.approx(np.mean(aps), abs=0.03)
    assert result.mINP == pytest.approx(result.mAP, abs=1e-12)  # one true match: INP = AP


def test_vehicleid_draws_approach_the_exact_expectation():
    rng = np.random.default_rng(4)
    pids = np.repeat(np.arange(8), rng.integers(1, 6, 8))  # 1..5 images per identity
    features = rng.normal(size=(len(pids), 6)) + 1.5 * rng.normal(size=(8, 6))[pids]
    norm = features / np.linalg.norm(features, axis=1, keepdims=True)
    distmat = 1 - norm @ norm.T
    result = evaluate_repeated_draws(
        features.astype(np.float32), pids, max_rank=MAX_RANK, num_draws=400, seed=2
    )
    counts = np.bincount(pids)
    # Every draw has len(pids) - num_ids queries; image q is a query with P (n - 1) / n.
    num_queries = len(pids) - len(counts)
    cmc_sum, ap_sum = np.zeros(MAX_RANK), 0.0
    for q in range(len(pids)):
        n = counts[pids[q]]
        if n == 1:
            continue
        true = [distmat[q][j] for j in range(len(pids)) if pids[j] == pids[q] and j != q]
        others = [
            [distmat[q][j] for j in range(len(pids)) if pids[j] == other]
            for other in range(len(counts))
            if other != pids[q]
        ]
        cmc, ap = _expected_single_match(true, others)
        cmc_sum += (n - 1) / n * cmc
        ap_sum += (n - 1) / n * ap
    np.testing.assert_allclose(result.cmc, (cmc_sum / num_queries)[: len(result.cmc)], atol=0.04)
    assert result.mAP == pytest.approx(ap_sum / num_queries, abs=0.03)
    assert result.mINP == pytest.approx(result.mAP, abs=1e-12)
