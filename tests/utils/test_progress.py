"""Progress bars follow FASTREID_PROGRESS and the terminal, in inference on a test set and in
feature extraction."""

from __future__ import annotations

import io
import sys
from collections import OrderedDict

import pytest
import torch
from torch import nn

from fastreid.evaluation.evaluator import DatasetEvaluator, inference_on_dataset
from fastreid.predictor import FeatureExtractor
from fastreid.utils.progress import PROGRESS_ENV, progress_bar, progress_bar_enabled


class _Stderr(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def _stderr(monkeypatch, tty: bool, setting) -> _Stderr:
    stream = _Stderr(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    if setting is None:
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(PROGRESS_ENV, setting)
    return stream


CASES = [  # (stderr is a terminal, FASTREID_PROGRESS, bar shown)
    (True, None, True),
    (False, None, False),
    (True, "0", False),
    (True, "off", False),
    (False, "1", True),
]


@pytest.mark.parametrize("tty, setting, shown", CASES)
def test_progress_bar_enabled(monkeypatch, tty, setting, shown):
    _stderr(monkeypatch, tty, setting)
    assert progress_bar_enabled() is shown
    items = [1, 2, 3]
    wrapped = progress_bar(items, total=3)
    assert (wrapped is items) is not shown
    assert list(wrapped) == items


class _Mean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, batch):
        images = batch["images"] if isinstance(batch, dict) else batch
        return images.float().mean(dim=(2, 3)) * self.scale


class _Collect(DatasetEvaluator):
    def reset(self) -> None:
        self.seen = 0

    def process(self, inputs, outputs) -> None:
        self.seen += len(outputs)

    def evaluate(self):
        return OrderedDict(seen=float(self.seen), metric=0.0)


@pytest.mark.parametrize("tty, setting, shown", CASES)
def test_inference_bar(monkeypatch, tty, setting, shown):
    stream = _stderr(monkeypatch, tty, setting)
    loader = [{"images": torch.rand(2, 3, 8, 4) * 255} for _ in range(3)]
    results = inference_on_dataset(_Mean(), loader, _Collect())
    assert results["seen"] == 6
    text = stream.getvalue()
    assert ("Inference" in text and "/3 " in text) is shown, text


@pytest.mark.parametrize("tty, setting, shown", CASES)
def test_feature_extraction_bar(monkeypatch, tty, setting, shown):
    stream = _stderr(monkeypatch, tty, setting)
    images = torch.randint(0, 256, (5, 3, 8, 4), dtype=torch.uint8)
    features = FeatureExtractor(_Mean(), batch_size=2, size=(8, 4), normalize=False)(images)
    reference = images.float().mean(dim=(2, 3))
    torch.testing.assert_close(features, reference)
    text = stream.getvalue()
    assert ("Extracting features" in text and "/3 " in text) is shown, text
