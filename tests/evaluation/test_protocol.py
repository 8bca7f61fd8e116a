"""One Market-1501 rule for rank metrics, ROC figures and the visualizer (junk is pid < 0)."""

import numpy as np
import torch

from fastreid.evaluation import RocAccumulator, evaluate_rank, visualizer
from fastreid.evaluation.protocol import market1501_keep

# Query 1 and gallery 2, 6 are junk (-1); pid 0 is a distractor identity that still counts.
Q_PIDS, Q_CAMS = np.array([1, -1, 0, 2]), np.array([0, 0, 1, 0])
G_PIDS, G_CAMS = np.array([1, 1, -1, 0, 0, 2, -1, 3]), np.array([0, 1, 1, 0, 1, 0, 0, 1])


def _hand_mask():
    mask = np.zeros((len(Q_PIDS), len(G_PIDS)), dtype=bool)
    for i, (qp, qc) in enumerate(zip(Q_PIDS, Q_CAMS)):
        for j, (gp, gc) in enumerate(zip(G_PIDS, G_CAMS)):
            mask[i, j] = qp >= 0 and gp >= 0 and not (qp == gp and qc == gc)
    return mask


def _features():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(8, 8)).astype(np.float32)


def test_mask_matches_the_rule_for_numpy_and_torch():
    expected = _hand_mask()
    got = market1501_keep(Q_PIDS[:, None], Q_CAMS[:, None], G_PIDS[None], G_CAMS[None])
    np.testing.assert_array_equal(got, expected)
    tensors = [torch.from_numpy(x) for x in (Q_PIDS, Q_CAMS, G_PIDS, G_CAMS)]
    got_t = market1501_keep(tensors[0][:, None], tensors[1][:, None], tensors[2], tensors[3])
    np.testing.assert_array_equal(got_t.numpy(), expected)


def test_rank_roc_and_visualizer_keep_the_same_pairs():
    expected = _hand_mask()
    genuine = expected & (Q_PIDS[:, None] == G_PIDS[None])
    qf, gf = _features()

    # Rank metrics: junk query 1 and query 3 (its only match shares its camera) are skipped.
    result = evaluate_rank(
        None, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5, query_features=qf, gallery_features=gf
    )
    with_match = genuine.any(axis=1)
    assert result.num_skipped == int((~with_match).sum()) == 2
    assert len(result.all_AP) == 2

    # ROC accumulator and the visualizer's pair distances count the same pairs.
    roc = RocAccumulator(Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    dist = 1 - torch.nn.functional.normalize(torch.from_numpy(qf), dim=1) @ (
        torch.nn.functional.normalize(torch.from_numpy(gf), dim=1).T
    )
    roc.update(0, dist)
    assert sum(len(g) for g in roc.genuine) == int(genuine.sum()) == 2
    assert roc.num_impostor == int((expected & ~genuine).sum())
    positive, negative = visualizer.pair_distances(qf, gf, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert len(positive) == int(genuine.sum())
    assert len(negative) == int((expected & ~genuine).sum())

    # Rank lists show exactly the kept gallery entries of each query.
    lists = visualizer.rank_lists(qf, gf, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, range(4), topk=8)
    for i, (index, _, match) in enumerate(lists):
        assert sorted(index.tolist()) == np.flatnonzero(expected[i]).tolist()
        np.testing.assert_array_equal(match, genuine[i, index])
