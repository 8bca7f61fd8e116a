"""10-fold verification accuracy, TAR@FAR and FaceEvaluator on hand-computed cases."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from projects.FastFace.fastface.verification import (
    FaceEvaluator,
    kfold_accuracy,
    pair_distances,
    tar_at_far,
)


def hand_case():
    # 20 pairs, even ones genuine. Genuine at distance 0.455, impostors at 1.5, except pair 0
    # (genuine, 1.7) and pair 1 (impostor, 0.3): both fall in fold 0 (pairs 0 and 1).
    issame = np.arange(20) % 2 == 0
    dist = np.where(issame, 0.455, 1.5)
    dist[0], dist[1] = 1.7, 0.3
    return dist, issame


def test_kfold_accuracy_hand_computed():
    dist, issame = hand_case()
    out = kfold_accuracy(dist, issame)
    # Every training split is best separated by the first threshold above 0.455 (0.46): fold 0
    # then gets both its pairs wrong, the 9 other folds are right.
    np.testing.assert_allclose(out["threshold"], 0.46)
    np.testing.assert_allclose(out["accuracy"], [0.0] + [1.0] * 9)
    assert out["accuracy"].mean() == pytest.approx(0.9)


def test_threshold_is_chosen_on_the_other_folds_only():
    # Fold 0's own pairs would prefer a threshold above 1.7; the other folds decide.
    issame = np.arange(20) % 2 == 0
    dist = np.where(issame, 0.2, 1.0)
    dist[0] = 1.8  # genuine but far
    out = kfold_accuracy(dist, issame)
    assert out["threshold"][0] == pytest.approx(0.21)
    assert out["accuracy"][0] == 0.5


def test_folds_are_sklearn_kfold_without_shuffle():
    from sklearn.model_selection import KFold

    n = 23
    issame = np.zeros(n, bool)
    issame[::3] = True
    ours = [len(f) for f in np.array_split(np.arange(n), 10)]
    theirs = [len(t) for _, t in KFold(10, shuffle=False).split(np.arange(n))]
    assert ours == theirs


def test_tar_at_far_hand_computed():
    dist, issame = hand_case()
    # ROC over all pairs: the impostor at 0.3 comes first (FAR 0.1 before any genuine), then
    # 9 genuine at 0.5 (TAR 0.9), then the 9 impostors at 1.5, then the last genuine.
    tars = tar_at_far(dist, issame, fars=(0.05, 0.5))
    assert tars[0.05] == pytest.approx(0.0)
    assert tars[0.5] == pytest.approx(0.9)
    clean = np.where(issame, 0.5, 1.5)
    assert tar_at_far(clean, issame, fars=(1e-3,))[1e-3] == pytest.approx(1.0)


def test_pair_distances_are_squared_euclidean_of_unit_vectors():
    angles = [0.0, math.pi / 2, 0.0, math.pi, 0.3, 0.3]
    feats = torch.tensor([[3 * math.cos(a), 3 * math.sin(a)] for a in angles])
    np.testing.assert_allclose(pair_distances(feats), [2.0, 4.0, 0.0], atol=1e-9)


def test_face_evaluator_end_to_end(tmp_path):
    dist, issame = hand_case()
    # Unit vectors whose pair distance is dist: angle = 2 asin(sqrt(dist) / 2).
    rows = []
    for d in dist:
        angle = 2 * math.asin(math.sqrt(d) / 2)
        rows += [[1.0, 0.0], [math.cos(angle), math.sin(angle)]]
    feats = torch.tensor(rows) * 5
    ev = FaceEvaluator(issame, "hand", str(tmp_path))
    ev.reset()
    ev.process({}, feats[:17])
    ev.process({}, feats[17:])
    res = ev.evaluate()
    assert res["Accuracy"] == pytest.approx(90.0)
    assert res["metric"] == res["Accuracy"]
    assert res["Threshold"] == pytest.approx(0.46)
    assert os.path.getsize(tmp_path / "visualization" / "hand_roc.png") > 1000
    with pytest.raises(ValueError, match="every pair needs 2 images"):
        ev.reset()
        ev.process({}, feats[:6])
        ev.evaluate()


def test_face_evaluator_is_registered_and_built_from_a_pair_test_set():
    from types import SimpleNamespace

    from fastreid.evaluation import EVALUATOR_REGISTRY
    from projects.FastFace.fastface.verification import FaceEvaluator, verification_metrics

    assert EVALUATOR_REGISTRY.get("FaceEvaluator") is FaceEvaluator
    issame = [i % 3 != 0 for i in range(12)]
    test_set = SimpleNamespace(source=SimpleNamespace(issame=issame))
    evaluator = FaceEvaluator.from_test_set(
        None, test_set=test_set, num_query=0, dataset_name="pairs", output_dir=None
    )
    features = torch.randn(24, 8, generator=torch.Generator().manual_seed(0))
    evaluator.process({}, features[:10])
    evaluator.process({}, features[10:])
    assert evaluator.evaluate() == verification_metrics(features, np.asarray(issame))
    with pytest.raises(ValueError, match="not a pair set"):
        FaceEvaluator.from_test_set(
            None, test_set=SimpleNamespace(), num_query=0, dataset_name="x", output_dir=None
        )
