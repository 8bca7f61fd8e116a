"""ClsEvaluator: Top-k and per-class accuracy against a plain reference, files it writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from projects.FastCls.fastcls import ClsEvaluator, classification_metrics


def reference(logits: np.ndarray, labels: np.ndarray, k: int):
    """Plain loops: a hit when the label is among the k largest logits."""
    hits, per_class = [], {}
    for row, label in zip(logits, labels):
        best = sorted(range(len(row)), key=lambda c: -row[c])
        hits.append(label in best[:k])
        per_class.setdefault(label, []).append(best[0] == label)
    return 100 * np.mean(hits), {c: 100 * np.mean(v) for c, v in per_class.items()}


def test_metrics_match_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 8))
    labels = rng.integers(0, 8, 200)
    logits[np.arange(200), labels] += 1.0  # better than chance, not perfect
    top = torch.tensor(logits).topk(5, dim=1).indices
    ours = classification_metrics(top, torch.tensor(labels), 8, ks=(1, 5))
    for k in (1, 5):
        ref_k, ref_class = reference(logits, labels, k)
        assert ours[f"Top-{k}"] == pytest.approx(ref_k)
    for c, acc in ref_class.items():
        assert ours["per_class"][c] == pytest.approx(acc)
    assert 20 < ours["Top-1"] < ours["Top-5"] < 100
    confusion = ours["confusion"]
    assert confusion.sum() == 200 and np.trace(confusion) == round(ours["Top-1"] * 2)
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(labels, minlength=8))


def test_evaluator_over_batches_writes_table_and_picture(tmp_path):
    names = [f"class {i}" for i in range(7)]
    evaluator = ClsEvaluator(names, str(tmp_path), name="Tiny")
    rng = np.random.default_rng(1)
    labels = torch.tensor(rng.integers(0, 6, 50))  # class 6 has no test image
    logits = torch.tensor(rng.normal(size=(50, 7))).float()
    logits[torch.arange(50), labels] += 1.5
    for start in range(0, 50, 16):
        evaluator.process({"targets": labels[start : start + 16]}, logits[start : start + 16])
    results = evaluator.evaluate()
    expected_top1 = (logits.argmax(1) == labels).float().mean().item() * 100
    assert list(results) == ["Top-1", "Top-5", "mean class accuracy", "Acc@1", "metric"]
    assert results["metric"] == results["Top-1"] == results["Acc@1"] == pytest.approx(expected_top1)
    assert np.isnan(evaluator.per_class_accuracy["class 6"])
    per_class = [evaluator.per_class_accuracy[f"class {i}"] for i in range(6)]
    assert results["mean class accuracy"] == pytest.approx(np.mean(per_class))
    assert os.path.getsize(tmp_path / "Tiny_confusion_matrix.png") > 1000
    lines = (tmp_path / "Tiny_per_class_accuracy.csv").read_text().splitlines()
    assert lines[0] == "class,images,accuracy" and len(lines) == 8


def test_two_classes_report_no_top5():
    evaluator = ClsEvaluator(["ants", "bees"])
    evaluator.process(
        {"targets": torch.tensor([0, 1, 1])}, torch.tensor([[2.0, 1], [0, 1], [3, 1]])
    )
    results = evaluator.evaluate()
    assert "Top-5" not in results and results["Top-1"] == pytest.approx(200 / 3)


def test_class_names_must_match_the_model():
    evaluator = ClsEvaluator(["a", "b", "c"])
    evaluator.process({"targets": torch.tensor([0])}, torch.zeros(1, 4))
    with pytest.raises(ValueError, match="4 classes but 3 class names"):
        evaluator.evaluate()


def test_core_trainer_builds_it_from_test_evaluator():
    from fastreid.config import get_cfg
    from fastreid.engine import DefaultTrainer
    from projects.FastCls.fastcls import ClsDataset

    class Trainer(DefaultTrainer):  # the core's build_evaluator with a classification test set
        @classmethod
        def build_test_loader(cls, cfg, dataset_name):
            test_set = ClsDataset(
                [("a.png", "cat", None), ("b.png", "dog", None)], None, ["cat", "dog"]
            )
            return type("Loader", (), {"dataset": test_set})(), len(test_set)

    cfg = get_cfg()
    cfg.TEST.EVALUATOR = "ClsEvaluator"
    _, evaluator = Trainer.build_evaluator(cfg, "Pets")
    assert isinstance(evaluator, ClsEvaluator)
    assert evaluator.class_names == ["cat", "dog"] and evaluator.name == "Pets"


def test_unreadable_test_images_are_marked_and_left_out(tmp_path, caplog):
    from PIL import Image

    from projects.FastCls.fastcls.data import ClsDataset

    good = str(tmp_path / "good.png")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(good)
    bad = str(tmp_path / "bad.png")
    with open(bad, "wb") as f:
        f.write(b"not an image")
    items = [(good, "a", 0), (bad, "b", 0)]
    test_set = ClsDataset(items, class_names=["a", "b"], skip_corrupt=True, for_evaluation=True)
    assert [test_set[i]["corrupt"] for i in range(2)] == [False, True]
    assert test_set[1]["targets"] == 1  # marked, not replaced by another image

    # The evaluator drops the marked rows: the same figures as feeding the readable rows only.
    rng = np.random.default_rng(2)
    labels = torch.tensor(rng.integers(0, 7, 40))
    logits = torch.tensor(rng.normal(size=(40, 7))).float()
    corrupt = torch.tensor(rng.random(40) < 0.25)
    logits[corrupt] = 0.0
    logits[corrupt, labels[corrupt]] = 9.0  # an unreadable row would count as a hit
    marked, plain = ClsEvaluator(name="Marked"), ClsEvaluator(name="Plain")
    for start in range(0, 40, 16):
        rows = slice(start, start + 16)
        marked.process({"targets": labels[rows], "corrupt": corrupt[rows]}, logits[rows])
        keep = ~corrupt[rows]
        plain.process({"targets": labels[rows][keep]}, logits[rows][keep])
    with caplog.at_level("WARNING"):
        results = marked.evaluate()
    assert results == plain.evaluate()
    assert f"Dropped {int(corrupt.sum())} unreadable images from the evaluation of Marked" in (
        caplog.text
    )
