"""Distillation losses against values computed by hand with plain Python on tiny cases."""

import math

import pytest
import torch

from fastreid.modeling.losses import logit_distillation_loss, overhaul_distillation_loss
from fastreid.modeling.losses.distill_loss import kl_divergence_loss, partial_l2

STUDENT = [[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]]
TEACHER = [[3.0, 1.0, 0.0], [0.0, 0.0, 2.0]]


def _softmax(row, t):
    z = sum(math.exp(v / t) for v in row)
    return [math.exp(v / t) / z for v in row]


def _kl(p, q):  # KL(p || q)
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _by_hand(kind, t):
    total = 0.0
    for s, te in zip(STUDENT, TEACHER):
        ps, pt = _softmax(s, t), _softmax(te, t)
        if kind == "kl":
            total += _kl(pt, ps)
        elif kind == "symmetric_kl":
            total += (_kl(pt, ps) + _kl(ps, pt)) / 2
        else:
            m = [(a + b) / 2 for a, b in zip(ps, pt)]
            total += (_kl(pt, m) + _kl(ps, m)) / 2
    return total * t * t / len(STUDENT)


@pytest.mark.parametrize("kind", ["kl", "symmetric_kl", "js"])
@pytest.mark.parametrize("t", [1.0, 4.0, 16.0])
def test_logit_divergences_match_hand_computation(kind, t):
    loss = logit_distillation_loss(
        torch.tensor(STUDENT, dtype=torch.float64),
        torch.tensor(TEACHER, dtype=torch.float64),
        temperature=t,
        divergence=kind,
    )
    assert loss.item() == pytest.approx(_by_hand(kind, t), rel=1e-9)


def test_kl_is_fastreids_kldiv_definition():
    # FastReID: kl_div(log_softmax(s/T), softmax(t/T), reduction="sum") * T^2 / N
    s, t = torch.tensor(STUDENT), torch.tensor(TEACHER)
    expected = _by_hand("kl", 16.0)
    assert kl_divergence_loss(s, t, 16.0).item() == pytest.approx(expected, rel=1e-5)


def test_identical_logits_give_zero_loss():
    x = torch.tensor(STUDENT, dtype=torch.float64)
    for kind in ("kl", "symmetric_kl", "js"):
        assert logit_distillation_loss(x, x.clone(), 16.0, kind).item() == pytest.approx(
            0.0, abs=1e-6
        )


def test_symmetric_kl_sends_gradient_to_student_only_and_through_both_terms():
    s = torch.tensor(STUDENT, requires_grad=True)
    t = torch.tensor(TEACHER, requires_grad=True)
    logit_distillation_loss(s, t, 2.0, "symmetric_kl").backward()
    assert t.grad is None
    # The gradient equals that of (KL(t||s) + KL(s||t)) / 2 with the student's softmax
    # differentiated in both terms (FastReID does not detach it in the second one).
    s2 = torch.tensor(STUDENT, requires_grad=True)
    td = torch.tensor(TEACHER)
    ls, lt = torch.log_softmax(s2 / 2, 1), torch.log_softmax(td / 2, 1)
    ref = ((lt.exp() * (lt - ls)).sum() + (ls.exp() * (ls - lt)).sum()) / 2 * 4 / 2
    ref.backward()
    torch.testing.assert_close(s.grad, s2.grad)


def test_unknown_divergence_and_class_mismatch_are_clear_errors():
    s = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="KD.DIVERGENCE"):
        logit_distillation_loss(s, s, 16.0, "jsd")
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        logit_distillation_loss(s, torch.zeros(2, 4))


def test_partial_l2_by_hand():
    s = torch.tensor([1.0, -2.0, -0.5, 0.3]).view(1, 4, 1, 1)
    t = torch.tensor([2.0, -1.0, -3.0, -0.1]).view(1, 4, 1, 1)
    m = torch.tensor([-1.0, -1.5, -1.0, -0.2]).view(1, 4, 1, 1)
    # t' = max(t, m) = [2, -1, -1, -0.1]
    # ch0: t'>0 -> (1-2)^2 = 1; ch1: s=-2 < t'=-1, t'<0 -> 0;
    # ch2: s=-0.5 > t'=-1 -> 0.25; ch3: s=0.3 > -0.1 -> 0.16
    assert partial_l2(s, t, m).item() == pytest.approx(1 + 0.25 + 0.16, rel=1e-6)


def test_overhaul_loss_stage_weights_and_normalisation():
    torch.manual_seed(0)
    shapes = [(2, 3, 8, 4), (2, 5, 4, 2), (2, 7, 2, 1), (2, 9, 2, 1)]
    s = [torch.randn(sh) for sh in shapes]
    t = [torch.randn(sh) for sh in shapes]
    m = [-torch.rand(1, sh[1], 1, 1) for sh in shapes]
    expected = sum(
        partial_l2(a, b, c).item() * w for a, b, c, w in zip(s, t, m, (1 / 8, 1 / 4, 1 / 2, 1))
    )
    expected /= 2 * 10000
    assert overhaul_distillation_loss(s, t, m).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="LAST_STRIDE"):
        overhaul_distillation_loss(s, [x[..., :1] for x in t], m)
