"""Bad input, solver settings that cannot train."""

from __future__ import annotations

import pytest

from ..bad_input import (
    error_line,
    small_cfg,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


def test_negative_learning_rate_names_solver_base_lr(r18_model, capsys):
    from fastreid.solver import build_optimizer

    line = error_line(capsys, build_optimizer, small_cfg("SOLVER.BASE_LR", "-0.01"), r18_model)
    assert "SOLVER.BASE_LR is -0.01" in line
