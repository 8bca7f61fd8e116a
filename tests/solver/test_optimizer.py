"""Optimizer construction and per-parameter-group hyper-parameters."""

import pytest
import torch
from torch import nn

from fastreid.config import get_cfg
from fastreid.modeling.layers.batch_norm import get_norm
from fastreid.solver import build_optimizer, optimizer_names


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
        self.heads = nn.Module()
        self.heads.fc = nn.Linear(4, 2)
        self.heads.norm = get_norm("BN", 4, bias_freeze=True)


def cfg_with(**kv):
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "SOLVER.BASE_LR", 0.1,
            "SOLVER.WEIGHT_DECAY", 1e-3,
            "SOLVER.WEIGHT_DECAY_NORM", 1e-4,
            "SOLVER.WEIGHT_DECAY_BIAS", 0.0,
            "SOLVER.BIAS_LR_FACTOR", 2.0,
            "SOLVER.HEADS_LR_FACTOR", 10.0,
        ]
    )  # fmt: skip
    for k, v in kv.items():
        cfg.merge_from_list([k, v])
    return cfg


def groups_by_name(opt):
    """Full parameter name -> its group."""
    return {n: g for g in opt.param_groups for n in g["param_names"]}


def test_groups_get_their_lr_and_weight_decay():
    opt = build_optimizer(cfg_with(), Model())
    g = groups_by_name(opt)
    expected = {
        "backbone.0.weight": (0.1, 1e-3),
        "backbone.0.bias": (0.2, 0.0),
        "backbone.1.weight": (0.1, 1e-4),
        "backbone.1.bias": (0.2, 0.0),
        "heads.fc.weight": (1.0, 1e-3),
        "heads.fc.bias": (2.0, 0.0),
        "heads.norm.weight": (1.0, 1e-4),
    }
    assert set(g) == set(expected), "frozen BNNeck bias must be left out"
    for name, (lr, wd) in expected.items():
        assert g[name]["lr"] == pytest.approx(lr), name
        assert g[name]["weight_decay"] == pytest.approx(wd), name
        assert g[name]["freeze_status"] == "normal"


def test_sgd_gets_momentum_and_nesterov():
    opt = build_optimizer(cfg_with(**{"SOLVER.OPT": "SGD", "SOLVER.NESTEROV": True}), Model())
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"] is True


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop", "Adagrad"])
def test_any_torch_optimizer_by_name(name):
    opt = build_optimizer(cfg_with(**{"SOLVER.OPT": name}), Model())
    assert isinstance(opt, getattr(torch.optim, name))


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(KeyError, match="AdamW"):
        build_optimizer(cfg_with(**{"SOLVER.OPT": "Adamw"}), Model())
    assert {"SGD", "Adam", "AdamW"} <= set(optimizer_names())


def test_optimizer_state_round_trips():
    model = Model()
    opt = build_optimizer(cfg_with(), model)
    model.backbone(torch.rand(2, 3, 2, 2)).sum().backward()
    opt.step()
    other = build_optimizer(cfg_with(), model)
    other.load_state_dict(opt.state_dict())
    assert other.state_dict()["state"].keys() == opt.state_dict()["state"].keys()


def test_parameters_with_equal_settings_share_a_group():
    opt = build_optimizer(cfg_with(), Model())
    names = sorted((g["name"], tuple(g["param_names"])) for g in opt.param_groups)
    assert names == [
        ("backbone", ("backbone.0.bias", "backbone.1.bias")),
        ("backbone", ("backbone.0.weight",)),
        ("backbone", ("backbone.1.weight",)),
        ("heads", ("heads.fc.bias",)),
        ("heads", ("heads.fc.weight",)),
        ("heads", ("heads.norm.weight",)),
    ]
    assert all(len(g["params"]) == len(g["param_names"]) for g in opt.param_groups)
