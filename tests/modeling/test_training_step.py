"""Training trains: a few optimizer steps on a fixed batch move every parameter that gets a
gradient and lower the loss (FastReID's flat-buffer optimizer on PyTorch >= 2 silently did not)."""

import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.solver import (
    build_gradient_clipper,
    build_lr_scheduler,
    build_optimizer,
    set_layers_frozen,
)

CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "..", "configs", "Market1501", "bagtricks_R50.yml"
)


def small_bot_cfg(opt="Adam"):
    cfg = get_cfg()
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(
        [
            "MODEL.BACKBONE.DEPTH", "18x",
            "MODEL.BACKBONE.FEAT_DIM", 512,
            "MODEL.BACKBONE.PRETRAIN", False,
            "MODEL.HEADS.NUM_CLASSES", 4,
            "MODEL.DEVICE", "cpu",
            "SOLVER.OPT", opt,
            "SOLVER.BASE_LR", 1e-3 if opt == "Adam" else 1e-2,
            "SOLVER.WARMUP_ITERS", 0,
            "SOLVER.CLIP_GRADIENTS.ENABLED", True,
            "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", 100.0,
        ]
    )  # fmt: skip
    return cfg


def fixed_batch(n=8):
    g = torch.Generator().manual_seed(0)
    return {"images": torch.rand(n, 3, 64, 32, generator=g) * 255, "targets": torch.arange(n) // 2}


def train_steps(model, optimizer, scheduler, clipper, data, steps):
    touched = set()
    losses = []
    for _ in range(steps):
        loss_dict = model(data)
        loss = sum(loss_dict.values())
        losses.append(loss.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                touched.add(name)
        if clipper is not None:
            clipper([p for g in optimizer.param_groups for p in g["params"]])
        optimizer.step()
        scheduler.step()
    return losses, touched


@pytest.mark.parametrize("opt", ["Adam", "SGD"])
def test_steps_change_every_trained_parameter_and_lower_the_loss(opt):
    cfg = small_bot_cfg(opt)
    model = build_model(cfg)
    model.train()
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer, iters_per_epoch=10)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = fixed_batch()

    losses, touched = train_steps(model, optimizer, scheduler, build_gradient_clipper(cfg), data, 4)

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert touched == trainable, "some trainable parameters never received a gradient"
    unchanged = [n for n in touched if torch.equal(before[n], model.get_parameter(n).detach())]
    assert unchanged == []
    # the BNNeck bias is frozen and must stay put
    assert torch.equal(before["heads.bottleneck.0.bias"], model.heads.bottleneck[0].bias.detach())
    with torch.no_grad():
        final = sum(model(data).values()).item()
    assert final < losses[0]


def test_frozen_layers_do_not_move_until_released():
    cfg = small_bot_cfg("SGD")
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer, iters_per_epoch=10)
    data = fixed_batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    set_layers_frozen(model, ["backbone"], True, optimizer)
    assert not model.backbone.training and model.heads.training
    train_steps(model, optimizer, scheduler, None, data, 2)
    for n, p in model.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        if n.startswith("backbone."):
            assert not moved, n
    assert not torch.equal(before["heads.weight"], model.heads.weight.detach())
    # the frozen BN statistics did not move either
    assert torch.equal(model.backbone.bn1.running_mean, torch.zeros(64))

    set_layers_frozen(model, ["backbone"], False, optimizer)
    assert model.backbone.training
    train_steps(model, optimizer, scheduler, None, data, 1)
    assert not torch.equal(before["backbone.conv1.weight"], model.backbone.conv1.weight.detach())
