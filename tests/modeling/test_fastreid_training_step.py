"""One training step of the demo recipe against FastReID's own numbers.

``tests/fixtures/fastreid_train/bagtricks_R18_synthetic.json`` was recorded with FastReID's
code on the recipe of ``configs/Synthetic/bagtricks_R18.yml`` (its ``config_yaml``): the random
initialisation statistics, every parameter's lr and weight decay, the lr of all 546 iterations,
and the train-mode losses and per-parameter gradient norms at fixed weights on a fixed batch.
The fixed weights follow a rule of the key name and shape (no weights are stored).
"""

import json
import math
from pathlib import Path

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.solver import build_lr_scheduler, build_optimizer

from .fastreid_parity import rule_tensor

FIXTURE = Path(__file__).parents[1] / "fixtures" / "fastreid_train" / "bagtricks_R18_synthetic.json"


@pytest.fixture(scope="module")
def golden():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def cfg(golden, tmp_path_factory):
    # FastReID's own config.yaml of the run, loaded unchanged.
    path = tmp_path_factory.mktemp("recipe") / "config.yaml"
    path.write_text(golden["config_yaml"])
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu"])
    return cfg


def rule_state_dict(model: torch.nn.Module) -> dict:
    state = {}
    for key, value in model.state_dict().items():
        # Integer buffers and the pixel statistics keep their values (FastReID's `kept`).
        if not value.is_floating_point() or key.startswith("pixel_"):
            state[key] = value.clone()
        else:
            state[key] = rule_tensor(key, value.shape)
    return state


def test_random_init_statistics_match_fastreid(golden, cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    params = dict(model.named_parameters())
    assert set(params) == set(golden["init_stats"])
    for name, (mean, std) in golden["init_stats"].items():
        p = params[name].detach().double()
        if std == 0.0:  # constant init (BN weight 1, bias 0): exactly
            assert torch.all(p == mean), name
            continue
        # Same distribution, other draws: the sample mean and std of n draws scatter by about
        # std / sqrt(n) and std / sqrt(2n); 6 of those is far outside chance.
        n = p.numel()
        assert abs(p.mean().item() - mean) <= 6 * std / math.sqrt(n), name
        assert abs(p.std().item() / std - 1) <= 6 / math.sqrt(2 * n), name


def test_random_init_is_normal_like_fastreids(golden, cfg):
    """Equal mean/std also hold for a uniform init; FastReID draws normals (conv: std
    sqrt(2 / fan_out), classifier: std 0.01): about 68.3 % of the draws lie within one std."""
    torch.manual_seed(0)
    model = build_model(cfg)
    for name in ("backbone.conv1.weight", "backbone.layer4.1.conv2.weight", "heads.weight"):
        p = model.get_parameter(name).detach()
        std = golden["init_stats"][name][1]
        inside = (p.abs() <= std).float().mean().item()
        assert abs(inside - 0.6827) < 0.01, (name, inside)  # uniform would give 0.577


def test_param_groups_match_fastreid(golden, cfg):
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.Adam)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            seen[names[id(p)]] = [group["lr"], group["weight_decay"]]
    assert set(seen) == set(golden["groups"])  # the frozen BNNeck bias is in neither
    for name, (lr, wd) in golden["groups"].items():
        assert seen[name] == pytest.approx([lr, wd], rel=1e-12), name
    defaults = optimizer.defaults
    assert defaults["betas"] == (0.9, 0.999) and defaults["eps"] == 1e-8
    assert not defaults["amsgrad"]


def test_lr_of_every_iteration_matches_fastreid(golden, cfg):
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer, iters_per_epoch=golden["iters_per_epoch"])
    curve = []
    for _ in range(len(golden["lr_curve"])):
        curve.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert len(curve) == 546
    assert curve == pytest.approx(golden["lr_curve"], rel=1e-9, abs=1e-15)


def test_losses_and_gradients_at_fixed_weights_match_fastreid(golden, cfg):
    model = build_model(cfg)
    model.load_state_dict(rule_state_dict(model))
    model.train()
    batch = golden["batch"]
    images = torch.rand(batch["shape"], generator=torch.Generator().manual_seed(batch["seed"]))
    data = {"images": images * 255, "targets": torch.tensor(batch["targets"])}

    losses = model(data)
    assert set(losses) == set(golden["losses"])
    for name, value in golden["losses"].items():
        assert losses[name].item() == pytest.approx(value, rel=1e-4), name

    sum(losses.values()).backward()
    norms = {n: p.grad.norm().item() for n, p in model.named_parameters() if p.grad is not None}
    assert set(norms) == set(golden["grad_norms"])
    for name, value in golden["grad_norms"].items():
        assert norms[name] == pytest.approx(value, rel=2e-3, abs=1e-6), name
