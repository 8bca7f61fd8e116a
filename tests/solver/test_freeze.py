"""Layer freezing: frozen optimizer groups are skipped, BN stays in eval mode."""

import logging

import torch
from torch import nn

from fastreid.config import get_cfg
from fastreid.solver import build_optimizer, set_layers_frozen


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
        self.heads = nn.Linear(3, 2)

    def forward(self, x):
        return self.heads(self.backbone(x)).sum()


def test_frozen_groups_are_marked_and_skipped():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.OPT", "Adam", "SOLVER.BASE_LR", 0.1])
    model = Model()
    opt = build_optimizer(cfg, model)
    found = set_layers_frozen(model, ["backbone"], True, opt)
    assert found == ["backbone"]
    status = {n: g["freeze_status"] for g in opt.param_groups for n in g["param_names"]}
    assert status["backbone.0.weight"] == "freeze" and status["heads.weight"] == "normal"
    assert not model.backbone[1].training

    before = [p.detach().clone() for p in model.backbone.parameters()]
    model(torch.rand(4, 3)).backward()
    opt.step()
    assert all(torch.equal(b, p) for b, p in zip(before, model.backbone.parameters()))
    assert model.backbone[0].weight.grad is not None, "gradients are restored after the step"
    assert all(len(opt.state[p]) == 0 for p in model.backbone.parameters()), (
        "no Adam state for frozen"
    )

    set_layers_frozen(model, ["backbone"], False, opt)
    assert model.backbone[1].training
    opt.step()
    assert not torch.equal(before[0], model.backbone[0].weight.detach())


def test_unknown_layer_names_are_reported(caplog):
    with caplog.at_level(logging.WARNING):
        assert set_layers_frozen(Model(), ["b1"], True) == []
    assert "b1" in caplog.text
