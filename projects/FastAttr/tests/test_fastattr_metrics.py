"""AttrEvaluator's metrics against a plain, loop-by-loop reference of FastReID's definitions."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch

from fastreid.evaluation import EVALUATOR_REGISTRY
from projects.FastAttr.fastattr import AttrEvaluator, attribute_metrics


def reference_metrics(probs, gts, threshold):
    """mA and instance metrics written out with Python loops (FastReID's definitions)."""
    eps = 1e-20
    n, c = len(gts), len(gts[0])
    pred = [[1 if probs[i][j] >= threshold else 0 for j in range(c)] for i in range(n)]
    mean_acc = 0.0
    for j in range(c):
        pos = sum(gts[i][j] for i in range(n))
        neg = n - pos
        tp = sum(1 for i in range(n) if pred[i][j] == 1 and gts[i][j] == 1)
        tn = sum(1 for i in range(n) if pred[i][j] == 0 and gts[i][j] == 0)
        mean_acc += 0.5 * (tp / (pos + eps) + tn / (neg + eps))
    mean_acc /= c
    accu = prec = rec = 0.0
    for i in range(n):
        inter = sum(1 for j in range(c) if pred[i][j] and gts[i][j])
        union = sum(1 for j in range(c) if pred[i][j] or gts[i][j])
        accu += inter / (union + eps)
        prec += inter / (sum(pred[i]) + eps)
        rec += inter / (sum(gts[i]) + eps)
    accu, prec, rec = accu / n, prec / n, rec / n
    f1 = 2 * prec * rec / (prec + rec + eps)
    return {
        "mA": 100 * mean_acc,
        "Accu": 100 * accu,
        "Prec": 100 * prec,
        "Recall": 100 * rec,
        "F1": 100 * f1,
    }


def test_hand_checked_case():
    # 3 images, 2 attributes. Predictions at 0.5: [1,0], [1,1], [0,0].
    probs = np.array([[0.9, 0.2], [0.5, 0.7], [0.1, 0.4]])
    gts = np.array([[1, 0], [0, 1], [1, 1]])
    found = attribute_metrics(probs, gts, threshold=0.5)
    # attr0: P=2 (TP 1), N=1 (TN 0) -> 0.25; attr1: P=2 (TP 1), N=1 (TN 1) -> 0.75.
    assert found["mA"] == pytest.approx(50.0)
    np.testing.assert_allclose(found["positive_recall"], [0.5, 0.5])
    np.testing.assert_allclose(found["negative_recall"], [0.0, 1.0])
    # Per image |∩|/|∪|: 1/1, 1/2, 0/2; precision 1/1, 1/2, 0/0 -> 0; recall 1/1, 1/1, 0/2.
    assert found["Accu"] == pytest.approx(100 * 1.5 / 3)
    assert found["Prec"] == pytest.approx(100 * 1.5 / 3)
    assert found["Recall"] == pytest.approx(100 * 2 / 3)
    p, r = 0.5, 2 / 3
    assert found["F1"] == pytest.approx(100 * 2 * p * r / (p + r))


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_matches_the_loop_reference(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    gts = (rng.random((40, 7)) < 0.3).astype(int)
    gts[:, 6] = 0  # an attribute without positives: its positive recall counts as 0
    probs = np.clip(gts * 0.6 + rng.random((40, 7)) * 0.5, 0, 1)
    found = attribute_metrics(probs, gts, threshold)
    expected = reference_metrics(probs.tolist(), gts.tolist(), threshold)
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, rel=1e-9), key


def _batches(probs, gts, size):
    for start in range(0, len(gts), size):
        yield (
            {"targets": torch.tensor(gts[start : start + size], dtype=torch.float32)},
            torch.tensor(probs[start : start + size], dtype=torch.float32),
        )


def test_evaluator_reports_metric_table_and_picture(tmp_path):
    rng = np.random.default_rng(0)
    gts = (rng.random((25, 3)) < 0.4).astype(int)
    probs = np.clip(gts * 0.5 + rng.random((25, 3)) * 0.6, 0, 1).astype(np.float32)
    assert EVALUATOR_REGISTRY.get("AttrEvaluator") is AttrEvaluator
    evaluator = AttrEvaluator(["hat", "bag", "skirt"], 0.5, str(tmp_path), "Toy")
    for inputs, outputs in _batches(probs, gts, 8):
        evaluator.process(inputs, outputs)
    results = evaluator.evaluate()
    expected = reference_metrics(probs.tolist(), gts.tolist(), 0.5)
    assert list(results) == ["Accu", "Prec", "Recall", "F1", "mA", "metric"]
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, rel=1e-6), key
    assert results["metric"] == results["mA"]

    with open(tmp_path / "attributes_Toy.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["attribute"] for r in rows] == ["hat", "bag", "skirt"]
    for j, row in enumerate(rows):
        pos = gts[:, j].sum()
        tp = ((probs[:, j] >= 0.5) & (gts[:, j] == 1)).sum()
        assert int(row["positives"]) == pos
        assert float(row["positive_recall"]) == pytest.approx(100 * tp / pos, abs=1e-3)
    mean_of_rows = np.mean([float(r["mean_accuracy"]) for r in rows])
    assert mean_of_rows == pytest.approx(results["mA"], abs=1e-3)
    picture = tmp_path / "attribute_recall_Toy.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.path.getsize(picture) > 1000


def test_evaluator_names_num_classes_when_the_head_does_not_fit():
    evaluator = AttrEvaluator(["a", "b", "c"], dataset_name="Toy")
    with pytest.raises(ValueError, match="MODEL.HEADS.NUM_CLASSES 3"):
        evaluator.process({"targets": torch.zeros(2, 3)}, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="attribute vectors"):
        evaluator.process({"targets": torch.zeros(2, dtype=torch.int64)}, torch.zeros(2, 3))


def test_unreadable_images_are_left_out(caplog):
    rng = np.random.default_rng(4)
    gts = (rng.random((30, 3)) < 0.4).astype(int)
    probs = np.clip(gts * 0.5 + rng.random((30, 3)) * 0.6, 0, 1).astype(np.float32)
    corrupt = rng.random(30) < 0.3
    probs[corrupt] = gts[corrupt]  # unreadable rows would look perfect
    evaluator = AttrEvaluator(["hat", "bag", "skirt"], 0.5, None, "Toy")
    for start in range(0, 30, 8):
        rows = slice(start, start + 8)
        inputs = {
            "targets": torch.tensor(gts[rows]).float(),
            "corrupt": torch.tensor(corrupt[rows]),
        }
        evaluator.process(inputs, torch.tensor(probs[rows]))
    with caplog.at_level("WARNING"):
        results = evaluator.evaluate()
    keep = ~corrupt
    expected = reference_metrics(probs[keep].tolist(), gts[keep].tolist(), 0.5)
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, rel=1e-6), key
    assert f"Dropped {int(corrupt.sum())} unreadable images from the evaluation of Toy" in (
        caplog.text
    )
