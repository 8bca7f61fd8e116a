"""Rank metrics: hand-checked cases, scikit-learn reference, chunking and top-k."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from fastreid.evaluation import evaluate_rank, evaluate_repeated_draws, evaluate_single_shot


def _random_problem(seed=0, num_query=40, num_gallery=300, dim=16, num_ids=20, num_cams=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    q_pids = rng.integers(0, num_ids, num_query)
    g_pids = rng.integers(0, num_ids, num_gallery)
    q_cams = rng.integers(0, num_cams, num_query)
    g_cams = rng.integers(0, num_cams, num_gallery)
    qf = centres[q_pids] + 1.5 * rng.normal(size=(num_query, dim))
    gf = centres[g_pids] + 1.5 * rng.normal(size=(num_gallery, dim))
    return (
        torch.tensor(qf, dtype=torch.float32),
        torch.tensor(gf, dtype=torch.float32),
        q_pids,
        g_pids,
        q_cams,
        g_cams,
    )


def test_hand_made_case_rank1_map_minp():
    # One query (pid 1, camera 0). Gallery ordered by distance:
    #   0: pid 1 cam 0 -> same pid and camera: removed
    #   1: pid 2       -> false
    #   2: pid 1 cam 1 -> true, rank 2 among kept
    #   3: pid 0       -> distractor, false
    #   4: pid -1      -> junk: removed
    #   5: pid 1 cam 2 -> true, rank 4 among kept
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    g_pids = np.array([1, 2, 1, 0, -1, 1])
    g_cams = np.array([0, 1, 1, 1, 1, 2])
    result = evaluate_rank(distmat, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=4)
    assert result.cmc.tolist() == [0.0, 1.0, 1.0, 1.0]
    # AP = (1/2 + 2/4) / 2 ; INP = 2 true matches / rank of the last one (4)
    assert result.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert result.mINP == pytest.approx(2 / 4)


def test_hand_made_two_queries_average_and_rank1():
    distmat = np.array(
        [
            [0.1, 0.9, 0.5, 0.3],  # pid 7 cam 0: order g0(t) g3(f) g2(t) g1(f)
            [0.8, 0.2, 0.1, 0.4],  # pid 8 cam 0: order g2(f) g1(t) g3(f) g0(f)
        ]
    )
    g_pids = np.array([7, 8, 7, 9])
    g_cams = np.array([1, 1, 2, 1])
    result = evaluate_rank(distmat, np.array([7, 8]), g_pids, np.array([0, 0]), g_cams, max_rank=3)
    # query 0: true at ranks 1, 3 -> AP (1 + 2/3)/2, INP 2/3; query 1: true at rank 2
    assert result.cmc.tolist() == [0.5, 1.0, 1.0]
    assert result.all_AP.tolist() == pytest.approx([(1 + 2 / 3) / 2, 1 / 2])
    assert result.all_INP.tolist() == pytest.approx([2 / 3, 1 / 2])


def test_query_without_true_match_is_skipped_and_counted():
    distmat = np.array([[0.1, 0.2], [0.3, 0.1]])
    result = evaluate_rank(
        distmat, np.array([1, 5]), np.array([1, 2]), np.array([0, 0]), np.array([1, 1])
    )
    assert result.num_skipped == 1 and result.num_queries == 2
    assert result.mAP == 1.0 and len(result.all_AP) == 1


def test_same_pid_same_camera_is_removed_but_distractors_stay():
    distmat = np.array([[0.1, 0.2, 0.3]])
    # same pid same cam first (removed), then a pid-0 distractor (stays, false), then true
    result = evaluate_rank(
        distmat, np.array([3]), np.array([3, 0, 3]), np.array([1]), np.array([1, 2, 2])
    )
    assert result.cmc[0] == 0.0 and result.mAP == pytest.approx(0.5)


def test_map_matches_sklearn_average_precision():
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_problem()
    result = evaluate_rank(
        None, q_pids, g_pids, q_cams, g_cams,
        query_features=qf, gallery_features=gf, metric="euclidean",
    )  # fmt: skip
    distmat = torch.cdist(qf.double(), gf.double()).numpy()
    expected = []
    for i in range(len(q_pids)):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        labels = g_pids[keep] == q_pids[i]
        if labels.any():
            expected.append(average_precision_score(labels, -distmat[i, keep]))
    assert result.mAP == pytest.approx(np.mean(expected), abs=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_chunked_equals_unchunked_and_distmat(metric):
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_problem(seed=1)
    labels = (q_pids, g_pids, q_cams, g_cams)
    whole = evaluate_rank(
        None, *labels, query_features=qf, gallery_features=gf, metric=metric, chunk_size=1000
    )
    chunked = evaluate_rank(
        None, *labels, query_features=qf, gallery_features=gf, metric=metric, chunk_size=7
    )
    if metric == "cosine":
        distmat = 1 - torch.nn.functional.normalize(qf) @ torch.nn.functional.normalize(gf).T
    else:
        distmat = torch.cdist(qf, gf)
    from_matrix = evaluate_rank(distmat.numpy(), *labels, chunk_size=5)
    np.testing.assert_allclose(whole.cmc, chunked.cmc)
    np.testing.assert_allclose(whole.all_AP, chunked.all_AP)
    np.testing.assert_allclose(whole.all_INP, from_matrix.all_INP, atol=1e-12)
    assert whole.mAP == pytest.approx(from_matrix.mAP, abs=1e-12)


def test_topk_mode_is_exact_when_all_true_matches_are_retrieved():
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_problem(seed=2, num_gallery=120)
    labels = (q_pids, g_pids, q_cams, g_cams)
    exact = evaluate_rank(None, *labels, query_features=qf, gallery_features=gf, max_rank=10)
    topk = evaluate_rank(
        None, *labels, query_features=qf, gallery_features=gf, max_rank=10,
        topk_gallery_limit=50, topk=119,
    )  # fmt: skip
    assert topk.topk == 119 and exact.topk is None
    np.testing.assert_allclose(topk.cmc, exact.cmc)
    # All but one gallery entry retrieved: AP can only drop, and barely.
    assert topk.mAP <= exact.mAP + 1e-12 and topk.mAP > exact.mAP - 0.01
    short = evaluate_rank(
        None, *labels, query_features=qf, gallery_features=gf, max_rank=10,
        topk_gallery_limit=50, topk=20,
    )  # fmt: skip
    np.testing.assert_allclose(short.cmc, exact.cmc)  # CMC up to 10 needs only the top 20
    assert short.mAP < exact.mAP


def test_single_shot_has_one_true_match_per_query():
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_problem(seed=3)
    result = evaluate_single_shot(
        None, q_pids, g_pids, q_cams, g_cams, max_rank=5, num_repeats=3,
        query_features=qf, gallery_features=gf,
    )  # fmt: skip
    np.testing.assert_allclose(result.all_AP, result.all_INP)  # AP = INP = 1/rank
    assert 0 < result.cmc[0] <= result.cmc[-1] <= 1


def test_repeated_draws_average_over_draws():
    qf, gf, _, g_pids, _, _ = _random_problem(seed=4)
    result = evaluate_repeated_draws(gf, g_pids, max_rank=5, num_draws=4)
    num_ids = len(np.unique(g_pids))
    assert len(result.all_AP) == 4 * (len(g_pids) - num_ids)
    assert 0 < result.mAP <= 1


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="distmat has shape"):
        evaluate_rank(np.zeros((2, 3)), [1], [1, 2, 3], [0], [1, 1, 1])
    with pytest.raises(ValueError, match="TEST.METRIC"):
        evaluate_rank(np.zeros((1, 1)), [1], [1], [0], [1], metric="hamming")
