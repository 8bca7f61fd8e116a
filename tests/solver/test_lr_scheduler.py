"""The per-iteration scheduler against hand-computed learning rates."""

import math

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.solver import WarmupMainLR, build_lr_scheduler


def _opt(lrs=(1.0,)):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])


def curve(sched, n):
    """Learning rate of group 0 in effect at iterations 0..n-1."""
    out = []
    for _ in range(n):
        out.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    return out


def test_linear_warmup_then_multistep():
    s = WarmupMainLR(
        _opt(), iters_per_epoch=10, steps=[2, 4], gamma=0.1, warmup_factor=0.1, warmup_iters=5
    )
    lrs = curve(s, 45)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[1] == pytest.approx(0.1 * 0.8 + 0.2)  # 0.28
    assert lrs[4] == pytest.approx(0.1 * 0.2 + 0.8)  # 0.82
    assert lrs[5] == pytest.approx(1.0)
    assert lrs[19] == pytest.approx(1.0)
    assert lrs[20] == pytest.approx(0.1)
    assert lrs[39] == pytest.approx(0.1)
    assert lrs[40] == pytest.approx(0.01)


def test_constant_and_exp_warmup():
    s = WarmupMainLR(
        _opt(), iters_per_epoch=10, warmup_factor=0.1, warmup_iters=5, warmup_method="constant"
    )
    assert curve(s, 6) == pytest.approx([0.1] * 5 + [1.0])
    s = WarmupMainLR(
        _opt(), iters_per_epoch=10, warmup_factor=0.1, warmup_iters=5, warmup_method="exp"
    )
    lrs = curve(s, 6)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[2] == pytest.approx(0.1**0.6)
    assert lrs[5] == pytest.approx(1.0)


def test_main_curve_starts_counting_after_the_warmup_epochs():
    # As FastReID: the main curve advances only at the end of epochs that finish past the
    # warmup, so a warmup into epoch 2 shifts STEPS by 2 epochs (iterations per epoch: 2).
    s = WarmupMainLR(
        _opt(), iters_per_epoch=2, steps=[1], gamma=0.5, warmup_factor=0.0, warmup_iters=4
    )
    lrs = curve(s, 10)
    assert lrs == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])


def test_fastreid_demo_recipe_steps_at_epoch_12():
    # 100 warmup iterations of 39 per epoch: STEPS [10] takes effect at epoch 12 (FastReID).
    s = WarmupMainLR(_opt(), iters_per_epoch=39, steps=[10], warmup_iters=100, max_epoch=14)
    lrs = curve(s, 14 * 39)
    assert lrs[100] == lrs[467] == pytest.approx(1.0)
    assert lrs[468] == lrs[-1] == pytest.approx(0.1)


def test_cosine_with_delay():
    # DELAY_EPOCHS 4: the curve holds for epochs 0-3 and advances from the end of epoch 3,
    # over MAX_EPOCH - DELAY_EPOCHS = 6 epochs.
    s = WarmupMainLR(
        _opt(),
        iters_per_epoch=3,
        sched="CosineAnnealingLR",
        max_epoch=10,
        delay_epochs=4,
        eta_min_lr=0.0,
    )
    lrs = curve(s, 33)
    per_epoch = lrs[::3]
    for e in range(4):
        assert per_epoch[e] == pytest.approx(1.0)
    assert per_epoch[4] == pytest.approx((1 + math.cos(math.pi / 6)) / 2)  # 0.9330
    assert per_epoch[6] == pytest.approx(0.5)
    assert per_epoch[9] == pytest.approx(0.0, abs=1e-12)
    assert lrs[16] == lrs[15]  # constant within an epoch


def test_cosine_spans_the_epochs_after_the_warmup():
    # warmup 5 iterations of 3 per epoch: 2 warmup epochs (rounded up), cosine over 8 - 2 = 6
    s = WarmupMainLR(
        _opt(), iters_per_epoch=3, sched="CosineAnnealingLR", max_epoch=8, warmup_iters=5,
        eta_min_lr=0.0,
    )  # fmt: skip
    lrs = curve(s, 24)
    per_epoch = lrs[::3]
    assert lrs[5] == pytest.approx(1.0)  # warmup done, the curve has not moved yet
    assert per_epoch[2] == pytest.approx((1 + math.cos(math.pi / 6)) / 2)
    assert per_epoch[7] == pytest.approx(0.0, abs=1e-12)


def test_cosine_eta_min_and_group_lrs():
    s = WarmupMainLR(
        _opt((1.0, 2.0)), iters_per_epoch=1, sched="CosineAnnealingLR", max_epoch=4, eta_min_lr=0.2
    )
    for _ in range(2):
        s.optimizer.step()
        s.step()
    # epoch 2 of 4: halfway
    assert [g["lr"] for g in s.optimizer.param_groups] == pytest.approx([0.6, 1.1])
    for _ in range(5):
        s.optimizer.step()
        s.step()
    assert [g["lr"] for g in s.optimizer.param_groups] == pytest.approx([0.2, 0.2])


def test_resume_is_exact():
    def make():
        return WarmupMainLR(
            _opt((1.0, 0.5)),
            iters_per_epoch=7,
            sched="CosineAnnealingLR",
            max_epoch=6,
            delay_epochs=2,
            warmup_iters=10,
        )

    a = make()
    curve(a, 23)
    state = a.state_dict()
    b = make()
    b.load_state_dict(state)
    # the trainer restores the optimizer too; lr values come from the scheduler
    for g_b, g_a in zip(b.optimizer.param_groups, a.optimizer.param_groups):
        g_b["lr"] = g_a["lr"]
    assert curve(b, 20) == curve(a, 20)


def test_build_from_config_and_errors():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.WARMUP_ITERS", 4, "SOLVER.STEPS", [1], "SOLVER.BASE_LR", 1.0])
    s = build_lr_scheduler(cfg, _opt(), iters_per_epoch=5)
    assert curve(s, 6) == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0, 0.1])
    cfg.merge_from_list(["SOLVER.SCHED", "StepLR"])
    with pytest.raises(ValueError, match="SOLVER.SCHED"):
        build_lr_scheduler(cfg, _opt(), 5)
    with pytest.raises(ValueError, match="SOLVER.WARMUP_METHOD"):
        WarmupMainLR(_opt(), 5, warmup_method="cosine")
    with pytest.raises(ValueError, match="DELAY_EPOCHS"):
        WarmupMainLR(_opt(), 5, sched="CosineAnnealingLR", max_epoch=3, delay_epochs=3)
    with pytest.raises(ValueError, match="WARMUP_ITERS"):
        WarmupMainLR(_opt(), 5, sched="CosineAnnealingLR", max_epoch=3, warmup_iters=11)
