"""ReidEvaluator, inference_on_dataset and the results table."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fastreid.config import get_cfg
from fastreid.evaluation import (
    EVALUATOR_REGISTRY,
    ReidEvaluator,
    evaluate_rank,
    inference_on_dataset,
    print_csv_format,
)
from fastreid.utils import comm

ROOT = Path(__file__).resolve().parents[2]


def _batches(features, pids, camids, batch_size=7):
    for start in range(0, len(features), batch_size):
        end = start + batch_size
        yield (
            {
                "targets": torch.as_tensor(pids[start:end]),
                "camids": torch.as_tensor(camids[start:end]),
            },
            torch.as_tensor(features[start:end]),
        )


def _data(seed=0, num=90, num_query=20):
    rng = np.random.default_rng(seed)
    pids = rng.integers(1, 12, num)
    camids = rng.integers(0, 3, num)
    centres = rng.normal(size=(12, 8))
    features = (centres[pids] + rng.normal(size=(num, 8))).astype(np.float32)
    return features, pids, camids, num_query


def test_reid_evaluator_matches_evaluate_rank_in_percent():
    features, pids, camids, nq = _data()
    evaluator = ReidEvaluator(nq, metric="euclidean")
    for inputs, outputs in _batches(features, pids, camids):
        evaluator.process(inputs, outputs)
    results = evaluator.evaluate()
    expected = evaluate_rank(
        None, pids[:nq], pids[nq:], camids[:nq], camids[nq:],
        query_features=features[:nq], gallery_features=features[nq:], metric="euclidean",
    )  # fmt: skip
    assert list(results)[:6] == ["Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
    assert results["mAP"] == pytest.approx(expected.mAP * 100)
    assert results["metric"] == pytest.approx((results["Rank-1"] + results["mAP"]) / 2)


def test_reid_evaluator_from_config_with_every_option():
    cfg = get_cfg()
    cfg.merge_from_list(
        ["TEST.ROC.ENABLED", True, "TEST.RERANK.ENABLED", True, "TEST.RERANK.K1", 5,
         "TEST.AQE.ENABLED", True, "TEST.METRIC", "cosine"]
    )  # fmt: skip
    features, pids, camids, nq = _data(seed=1)
    evaluator = EVALUATOR_REGISTRY.get("ReidEvaluator")(cfg, nq, None)
    assert evaluator.rerank and evaluator.aqe and evaluator.rerank_k1 == 5
    for inputs, outputs in _batches(features, pids, camids):
        evaluator.process(inputs, outputs)
    results = evaluator.evaluate()
    assert {"TPR@FPR=1e-04", "TPR@FPR=1e-03", "TPR@FPR=1e-02"} <= set(results)
    assert all(0 <= v <= 100 for v in results.values())


@pytest.mark.parametrize("protocol", ["cuhk03_single_shot", "repeated_draws"])
def test_reid_evaluator_draw_protocols(protocol):
    features, pids, camids, nq = _data(seed=2)
    evaluator = ReidEvaluator(nq, protocol=protocol, num_draws=2)
    for inputs, outputs in _batches(features, pids, camids):
        evaluator.process(inputs, outputs)
    assert 0 < evaluator.evaluate()["Rank-1"] <= 100


def test_distributed_evaluation_equals_single_process(monkeypatch):
    features, pids, camids, nq = _data(seed=3)
    single = ReidEvaluator(nq)
    for inputs, outputs in _batches(features, pids, camids):
        single.process(inputs, outputs)
    expected = single.evaluate()

    # Two ranks, each with a contiguous shard of the loader's order, as the inference
    # sampler gives them; rank 0 gathers both.
    shards = [ReidEvaluator(nq), ReidEvaluator(nq)]
    for rank, (lo, hi) in enumerate([(0, 45), (45, 90)]):
        for inputs, outputs in _batches(features[lo:hi], pids[lo:hi], camids[lo:hi], 4):
            shards[rank].process(inputs, outputs)
    payloads = [s.kept for s in shards]
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: payloads)
    monkeypatch.setattr(comm, "is_main_process", lambda: True)
    assert shards[0].evaluate() == expected
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert shards[1].evaluate() == {}


def test_evaluator_errors_name_the_fix():
    with pytest.raises(ValueError, match="TEST.PROTOCOL"):
        ReidEvaluator(3, protocol="oxford")
    evaluator = ReidEvaluator(50)
    evaluator.process(
        {"targets": torch.tensor([1, 1]), "camids": torch.tensor([0, 1])}, torch.randn(2, 4)
    )
    with pytest.raises(ValueError, match="query images first"):
        evaluator.evaluate()


class _MirrorSensitive(nn.Module):
    """Features = mean of the left half of each image; a mirror sees the right half."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.modes = []

    def forward(self, batch):
        self.modes.append(self.training)
        images = batch["images"]
        left = images[..., : images.shape[-1] // 2].mean(dim=(2, 3))
        return left * self.scale


def _loader(num=24):
    gen = torch.Generator().manual_seed(0)
    pids = torch.arange(num) % 6
    for start in range(0, num, 8):
        yield {
            "images": torch.rand(8, 3, 4, 6, generator=gen),
            "targets": pids[start : start + 8],
            "camids": (torch.arange(start, start + 8) // 6) % 2,
            "img_paths": [f"{i}.jpg" for i in range(start, start + 8)],
        }


class _Recorder(ReidEvaluator):
    pass


def test_inference_on_dataset_eval_mode_no_grad_and_restores_mode():
    model = _MirrorSensitive().train()
    evaluator = _Recorder(12)
    results = inference_on_dataset(model, list(_loader()), evaluator)
    assert model.training and model.modes and not any(model.modes)
    assert not evaluator.kept["features"][0].requires_grad
    assert "mAP" in results


def test_flip_test_averages_image_and_mirror():
    model = _MirrorSensitive()
    loader = list(_loader())
    plain, flipped = _Recorder(12), _Recorder(12)
    inference_on_dataset(model, loader, plain)
    inference_on_dataset(model, loader, flipped, flip_test=True)
    images = loader[0]["images"]
    expected = (images[..., :3].mean(dim=(2, 3)) + images.flip(3)[..., :3].mean(dim=(2, 3))) / 2
    torch.testing.assert_close(flipped.kept["features"][0], expected)
    assert not torch.allclose(plain.kept["features"][0], expected)


def test_print_csv_format_returns_a_table():
    table = print_csv_format({"Rank-1": 91.25, "mAP": 80.5})
    assert "Rank-1" in table and "91.25" in table and "80.50" in table


def test_bench_eval_quick_smoke(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_eval
    finally:
        sys.path.pop(0)
    output = tmp_path / "bench.json"
    assert bench_eval.main(["--quick", "--in-process", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    rows = {(r["scale"], r["case"]): r for r in report["results"]}
    reference = rows[("quick", "reference_numpy")]
    assert abs(reference["delta_mAP"]) < 1e-4 and abs(reference["delta_rank1"]) < 1e-4
    assert "top-" in rows[("quick_large", "ours_topk")]["note"]
    # FastReID's own pipeline (full matrix, one argsort, compiled loop) gives the same figures.
    fastreid = rows[("quick", "fastreid_equivalent")]
    assert abs(fastreid["delta_mAP"]) < 1e-4 and abs(fastreid["delta_mINP"]) < 1e-4
    probe = rows[("quick", "bf16_band_probe")]
    assert 0.0 < probe["band_share"] < 1.0 and "error band" in probe["note"]
