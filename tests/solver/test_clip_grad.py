"""Gradient clipping by value and by norm."""

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.solver import build_gradient_clipper, clip_gradients


def _params():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))
    a.grad = torch.tensor([3.0, -4.0])
    b.grad = torch.tensor([12.0])
    return [a, b, torch.nn.Parameter(torch.zeros(1))]  # the last has no gradient


def test_clip_by_value():
    a, b, _ = params = _params()
    clip_gradients(params, "value", 5.0)
    assert a.grad.tolist() == [3.0, -4.0] and b.grad.tolist() == [5.0]


def test_clip_by_norm():
    a, b, _ = params = _params()
    total = clip_gradients(params, "norm", 6.5)  # norm before: sqrt(9 + 16 + 144) = 13
    assert total.item() == pytest.approx(13.0)
    assert a.grad.tolist() == pytest.approx([1.5, -2.0], rel=1e-4)
    assert b.grad.tolist() == pytest.approx([6.0], rel=1e-4)


def test_clipper_from_config():
    cfg = get_cfg()
    assert build_gradient_clipper(cfg) is None
    cfg.merge_from_list(
        [
            "SOLVER.CLIP_GRADIENTS.ENABLED",
            True,
            "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
            "value",
            "SOLVER.CLIP_GRADIENTS.CLIP_VALUE",
            1.0,
        ]
    )
    a, b, _ = params = _params()
    build_gradient_clipper(cfg)(params)
    assert a.grad.tolist() == [1.0, -1.0] and b.grad.tolist() == [1.0]
    cfg.merge_from_list(["SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "max"])
    with pytest.raises(ValueError, match="CLIP_TYPE"):
        build_gradient_clipper(cfg)
