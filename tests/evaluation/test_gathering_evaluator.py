"""GatheringEvaluator: what each process kept is gathered once, in rank order, on the main
process; the others return an empty dict; nothing processed is one clear error."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from fastreid.evaluation import GatheringEvaluator
from fastreid.utils import comm


class _Sums(GatheringEvaluator):
    def process(self, inputs, outputs):
        self.keep(features=outputs, labels=inputs["targets"])
        if "extra" in inputs:
            self.keep(extra=inputs["extra"])

    def compute(self, collected):
        self.seen = collected
        return OrderedDict(metric=float(collected["features"].sum()))


def _feed(evaluator, features, labels, extra=None):
    for lo in range(0, len(features), 3):
        batch = {"targets": labels[lo : lo + 3]}
        if extra is not None:
            batch["extra"] = extra[lo : lo + 3]
        evaluator.process(batch, features[lo : lo + 3])


def test_single_process_concatenates_the_batches_in_order():
    features, labels = torch.randn(7, 4), torch.arange(7)
    evaluator = _Sums()
    _feed(evaluator, features, labels)
    assert evaluator.evaluate()["metric"] == pytest.approx(float(features.sum()), rel=1e-5)
    torch.testing.assert_close(evaluator.seen["features"], features)
    torch.testing.assert_close(evaluator.seen["labels"], labels)
    evaluator.reset()
    with pytest.raises(RuntimeError, match=r"_Sums.evaluate\(\) called before any process"):
        evaluator.evaluate()


def test_two_ranks_gather_in_rank_order_and_only_the_main_process_computes(monkeypatch):
    features, labels = torch.randn(10, 4), torch.arange(10)
    ranks = [_Sums(), _Sums()]
    _feed(ranks[0], features[:6], labels[:6], extra=torch.ones(6))
    _feed(ranks[1], features[6:], labels[6:])  # this rank kept no "extra"
    payloads = [r.kept for r in ranks]
    calls = []
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(comm, "synchronize", lambda: calls.append("sync"))
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: calls.append("gather") or payloads)
    monkeypatch.setattr(comm, "is_main_process", lambda: True)
    ranks[0].evaluate()
    assert calls == ["sync", "gather"]  # once per evaluation
    torch.testing.assert_close(ranks[0].seen["features"], features)
    torch.testing.assert_close(ranks[0].seen["labels"], labels)
    assert ranks[0].seen["extra"].tolist() == [1.0] * 6
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert ranks[1].evaluate() == OrderedDict() and not hasattr(ranks[1], "seen")


def test_kept_tensors_are_detached_on_the_cpu():
    evaluator = _Sums()
    outputs = torch.randn(3, 2, requires_grad=True)
    evaluator.process({"targets": torch.arange(3)}, outputs * 2)
    kept = evaluator.kept["features"][0]
    assert not kept.requires_grad and kept.device.type == "cpu"


def test_build_evaluator_reads_test_evaluator_from_the_registry():
    from fastreid.config import get_cfg
    from fastreid.evaluation import ReidEvaluator, build_evaluator

    cfg = get_cfg()
    cfg.TEST.EVALUATOR = "ReidEvaluator"
    evaluator = build_evaluator(cfg, test_set=None, num_query=5, dataset_name="x")
    assert type(evaluator) is ReidEvaluator and evaluator.num_query == 5
    cfg.TEST.EVALUATOR = "ReidEvaluatr"
    with pytest.raises(KeyError, match="ReidEvaluator"):
        build_evaluator(cfg, test_set=None, num_query=5, dataset_name="x")
