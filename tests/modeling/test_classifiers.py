"""Classifier layers: margins applied to the true class of labelled rows only, then the scale."""

import math

import pytest
import torch

from fastreid.modeling.layers.any_softmax import ArcSoftmax, CircleSoftmax, CosSoftmax, Linear

LOGITS = [[0.5, 0.2, -0.3], [0.1, 0.9, 0.4]]
TARGETS = [0, 1]
S, M = 2.0, 0.1


def _run(layer_cls, targets=TARGETS):
    layer = layer_cls(3, S, M)
    logits = torch.tensor(LOGITS)
    t = None if targets is None else torch.tensor(targets)
    out = layer(logits, t)
    assert torch.equal(logits, torch.tensor(LOGITS)), "input modified in place"
    return out.tolist()


def flat(rows):
    return [v for row in rows for v in row]


def test_linear_scales_only():
    out = _run(Linear)
    assert flat(out) == pytest.approx(flat([[S * v for v in row] for row in LOGITS]))


def test_all_layers_expose_scale():
    for cls in (Linear, CosSoftmax, ArcSoftmax, CircleSoftmax):
        assert cls(3, 64, 0.35).s == 64


def test_cos_softmax_subtracts_margin_at_target():
    out = _run(CosSoftmax)
    expected = [[S * (0.5 - M), S * 0.2, S * -0.3], [S * 0.1, S * (0.9 - M), S * 0.4]]
    assert flat(out) == pytest.approx(flat(expected), abs=1e-6)


def test_arc_softmax_adds_angle_at_target():
    out = _run(ArcSoftmax)
    expected = [
        [S * math.cos(math.acos(0.5) + M), S * 0.2, S * -0.3],
        [S * 0.1, S * math.cos(math.acos(0.9) + M), S * 0.4],
    ]
    assert flat(out) == pytest.approx(flat(expected), abs=1e-5)


def _circle_pos(c):
    return max(1 + M - c, 0.0) * (c - (1 - M))


def _circle_neg(c):
    return max(c + M, 0.0) * (c - M)


def test_circle_softmax_by_hand():
    out = _run(CircleSoftmax)
    expected = []
    for row, t in zip(LOGITS, TARGETS):
        expected.append(
            [S * (_circle_pos(c) if j == t else _circle_neg(c)) for j, c in enumerate(row)]
        )
    assert flat(out) == pytest.approx(flat(expected), abs=1e-6)


def test_unlabelled_rows_get_no_margin():
    out = _run(CosSoftmax, targets=[-1, 1])
    assert out[0] == pytest.approx([S * v for v in LOGITS[0]])
    out = _run(ArcSoftmax, targets=[-1, 1])
    assert out[0] == pytest.approx([S * v for v in LOGITS[0]], abs=1e-6)
    out = _run(CircleSoftmax, targets=[-1, 1])
    assert out[0] == pytest.approx([S * _circle_neg(c) for c in LOGITS[0]], abs=1e-6)


@pytest.mark.parametrize("cls", [CosSoftmax, ArcSoftmax, CircleSoftmax])
def test_no_targets_means_no_margin(cls):
    assert flat(_run(cls, targets=None)) == pytest.approx(
        flat([[S * v for v in row] for row in LOGITS])
    )


def test_arc_softmax_gradient_is_finite_at_cosine_one():
    logits = torch.tensor([[1.0, 0.0]], requires_grad=True)
    ArcSoftmax(2, 30, 0.5)(logits, torch.tensor([0])).sum().backward()
    assert torch.isfinite(logits.grad).all()
