"""RetriEvaluator over batches, and FastRetri end to end on a tiny zero-shot Fashion-MNIST."""

from __future__ import annotations

import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.data.synthetic.fashion_mnist import write_fashion_mnist_like as make_fashion_mnist
from fastreid.engine import default_argument_parser
from fastreid.engine.cli import main
from projects.FastRetri.fastretri import (
    RetriEvaluator,
    RetriTrainer,
    add_retri_config,
    retrieval_metrics,
)

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "fashion_mnist_zeroshot.yml")


def _feed(evaluator, feats, labels, batch=7):
    evaluator.reset()
    for start in range(0, len(feats), batch):
        evaluator.process({"targets": labels[start : start + batch]}, feats[start : start + batch])
    return evaluator.evaluate()


def test_all_queries_means_self_retrieval():
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (30,))
    feats = torch.randn(30, 5) + labels[:, None] * 0.8
    results = _feed(RetriEvaluator(30, recalls=(1, 4)), feats, labels)
    expected, _ = retrieval_metrics(feats, labels, recalls=(1, 4))
    assert list(results) == ["Recall@1", "Recall@4", "MAP@R", "metric"]
    for key, value in expected.items():
        assert results[key] == pytest.approx(value)
    assert results["metric"] == results["Recall@1"]


def test_query_then_gallery():
    torch.manual_seed(1)
    labels = torch.randint(0, 3, (25,))
    feats = torch.randn(25, 4) + labels[:, None]
    results = _feed(RetriEvaluator(10, recalls=(1, 2)), feats, labels)
    expected, _ = retrieval_metrics(
        feats[:10], labels[:10], feats[10:], labels[10:], recalls=(1, 2)
    )
    for key, value in expected.items():
        assert results[key] == pytest.approx(value)


def test_from_config_needs_the_project_keys():
    with pytest.raises(KeyError, match="add_retri_config"):
        RetriEvaluator(get_cfg(), 5)
    cfg = add_retri_config(get_cfg())
    cfg.TEST.RECALLS = [1, 100]
    evaluator = RetriEvaluator(cfg, 5)
    with pytest.raises(ValueError, match=r"TEST.RECALLS has \[100\]"):
        _feed(evaluator, torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 1]))


def _args(tmp_path, *extra):
    return default_argument_parser().parse_args(
        [
            "--config-file",
            CONFIG,
            *extra,
            "DATASETS.ROOT",
            str(tmp_path / "data"),
            "OUTPUT_DIR",
            str(tmp_path / "run"),
            "SOLVER.MAX_EPOCH",
            "1",
            "SOLVER.IMS_PER_BATCH",
            "10",
            "SOLVER.WARMUP_ITERS",
            "0",
            "SOLVER.AMP.ENABLED",
            "False",
            "DATALOADER.NUM_WORKERS",
            "0",
            "TEST.EVAL_PERIOD",
            "1",
            "TEST.IMS_PER_BATCH",
            "16",
        ]
    )


def test_zero_shot_train_and_random_init_evaluation(tmp_path):
    make_fashion_mnist(str(tmp_path / "data" / "fashion-mnist"), per_class=4, test_per_class=3)
    trained = main(_args(tmp_path), RetriTrainer)
    assert set(trained) == {"Recall@1", "Recall@2", "Recall@4", "Recall@8", "MAP@R", "metric"}
    assert (tmp_path / "run" / "model_final.pth").is_file()
    random_init = main(_args(tmp_path, "--eval-only"), RetriTrainer)
    assert set(random_init) == set(trained)
    for results in (trained, random_init):
        assert 0 <= results["Recall@1"] <= results["Recall@8"] <= 100


@pytest.mark.parametrize("num_query", [12, 30])  # query + gallery, self-retrieval
def test_unreadable_images_are_left_out_of_queries_and_gallery(num_query, caplog):
    torch.manual_seed(3)
    labels = torch.randint(0, 3, (30,))
    feats = torch.randn(30, 4) + labels[:, None]
    corrupt = torch.zeros(30, dtype=torch.bool)
    corrupt[[1, 5, 20, 27]] = True  # two queries and two gallery images when num_query=12
    feats[corrupt] = 0.0
    evaluator = RetriEvaluator(num_query, recalls=(1, 2))
    for start in range(0, 30, 7):
        rows = slice(start, start + 7)
        evaluator.process({"targets": labels[rows], "corrupt": corrupt[rows]}, feats[rows])
    with caplog.at_level("WARNING"):
        results = evaluator.evaluate()
    keep = ~corrupt
    if num_query == 30:
        expected, _ = retrieval_metrics(feats[keep], labels[keep], recalls=(1, 2))
    else:
        q = keep[:num_query]
        g = keep[num_query:]
        expected, _ = retrieval_metrics(
            feats[:num_query][q], labels[:num_query][q],
            feats[num_query:][g], labels[num_query:][g],
            recalls=(1, 2),
        )  # fmt: skip
        assert "(2 query, 2 gallery;" in caplog.text
    for key, value in expected.items():
        assert results[key] == pytest.approx(value)
    assert "Dropped 4 unreadable images" in caplog.text


def _no_checkpoints(folder):
    return not folder.exists() or not any(n.endswith(".pth") for n in os.listdir(folder))


def test_recalls_larger_than_the_test_set_stop_before_training(tmp_path):
    from fastreid.utils.errors import BadInputError

    make_fashion_mnist(str(tmp_path / "data" / "fashion-mnist"), per_class=4, test_per_class=3)
    with pytest.raises(BadInputError, match=r"TEST.RECALLS has \[100\].* only 14 candidates"):
        main(_args(tmp_path, "TEST.RECALLS", "[1, 100]"), RetriTrainer)
    assert _no_checkpoints(tmp_path / "run")


def test_test_set_without_relevant_images_stops_before_training(tmp_path):
    from fastreid.evaluation.rank import NoTrueMatchError

    # One test image per class: no query has another image of its class.
    make_fashion_mnist(str(tmp_path / "data" / "fashion-mnist"), per_class=4, test_per_class=1)
    with pytest.raises(NoTrueMatchError, match="none of its 5 queries has a relevant image"):
        main(_args(tmp_path, "TEST.RECALLS", "[1, 2]"), RetriTrainer)
    assert _no_checkpoints(tmp_path / "run")


def test_check_test_set_query_gallery_and_evaluate_without_any_relevant_query():
    from types import SimpleNamespace

    from fastreid.evaluation.rank import NoTrueMatchError

    def items(labels):
        return SimpleNamespace(img_items=[(f"{i}.png", lab, None) for i, lab in enumerate(labels)])

    evaluator = RetriEvaluator(2, recalls=(1, 2))
    evaluator.check_test_set(items([0, 1, 1, 2]), "qg")  # query 1 finds gallery 1
    with pytest.raises(NoTrueMatchError, match="none of its 2 queries"):
        evaluator.check_test_set(items([0, 1, 2, 3]), "qg")
    with pytest.raises(ValueError, match=r"TEST.RECALLS has \[2\]"):
        RetriEvaluator(2, recalls=(1, 2)).check_test_set(items([0, 1, 1]), "qg")
    # Scores would be 0 over zero relevant queries: one error, not a result.
    with pytest.raises(NoTrueMatchError, match="None of the 4 evaluated queries"):
        _feed(RetriEvaluator(4, recalls=(1,)), torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
