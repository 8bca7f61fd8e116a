"""Bad input, test sets without true matches and unreadable evaluation images."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from fastreid.data.common import CommDataset

from ..bad_input import error_line

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


def test_test_set_without_any_true_match_is_one_error(capsys):
    from fastreid.evaluation import evaluate_rank

    distmat = torch.rand(2, 3).numpy()
    line = error_line(
        capsys, evaluate_rank, distmat, [1, 2], [1, 3, 4], [0, 0], [0, 1, 1]
    )  # query 1's only match shares its camera; query 2 has none
    assert "None of the 2 queries has a true match" in line and "DATASETS.TESTS" in line


# -- unreadable evaluation images ------------------------------------------------------------
def _evaluate(items, num_query, skip_corrupt=True):
    from fastreid.data import build_reid_test_loader
    from fastreid.evaluation import ReidEvaluator

    dataset = CommDataset(items, relabel=False, skip_corrupt=skip_corrupt)
    loader, _ = build_reid_test_loader(dataset, test_batch_size=8, num_query=num_query)
    evaluator = ReidEvaluator(num_query)
    for batch in loader:
        images = torch.nn.functional.interpolate(batch["images"].float(), size=(8, 4))
        evaluator.process(batch, images.flatten(1))  # colour layout as the feature
    return evaluator.evaluate(), evaluator


def test_skip_corrupt_drops_unreadable_query_and_gallery_images_from_evaluation(
    tiny_reid_root, tmp_path, caplog
):
    from fastreid.data.datasets import DATASET_REGISTRY

    data = DATASET_REGISTRY.get("SyntheticReID")(root=str(tiny_reid_root), verbose=False)
    items = data.query + data.gallery
    broken = {1, len(data.query) + 2}  # one query and one gallery image
    copied = []
    for i, (path, pid, camid, *_) in enumerate(items):
        target = tmp_path / f"{i:04d}_{Path(path).name}"
        raw = Path(path).read_bytes()
        target.write_bytes(raw[:200] if i in broken else raw)
        copied.append((str(target), pid, camid))
    with caplog.at_level(logging.WARNING):
        results, evaluator = _evaluate(copied, len(data.query))
    assert "Dropped 2 unreadable images from the evaluation (1 query, 1 gallery" in caplog.text
    assert evaluator.num_dropped == 2
    # Exactly the metrics of the test set without those two images.
    readable = [item for i, item in enumerate(copied) if i not in broken]
    expected, _ = _evaluate(readable, len(data.query) - 1, skip_corrupt=False)
    assert results == pytest.approx(expected)
