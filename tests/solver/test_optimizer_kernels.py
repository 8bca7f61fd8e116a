"""SOLVER.FUSED / SOLVER.CUDA_GRAPH: which optimizer kernels, and that they update alike.

The fused CUDA kernels need a GPU (tests/gpu); on the CPU the multi-tensor (foreach) and the
fused CPU kernels are checked against torch's plain per-parameter loop, over FastReID's
parameter groups (bias lr factor, norm and bias weight decay, heads lr factor).
"""

import pytest
import torch
from torch import nn

from fastreid.config import get_cfg
from fastreid.solver import build_optimizer, get_default_optimizer_params
from fastreid.solver.optimizer import kernel_options


class Model(nn.Module):
    # No convolution bias before the BN: its gradient is ~1e-9 (the BN cancels it), where
    # Adam's g / (sqrt(v) + eps) amplifies any rounding difference between kernels.
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 6, 3, bias=False), nn.BatchNorm2d(6), nn.ReLU())
        self.heads = nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 5))

    def forward(self, x):
        return self.heads(self.backbone(x))


def _groups(model):
    return get_default_optimizer_params(
        model,
        base_lr=0.01,
        weight_decay=5e-4,
        weight_decay_norm=1e-4,
        bias_lr_factor=2.0,
        weight_decay_bias=0.0,
        heads_lr_factor=10.0,
    )


def _train(name, steps=5, **kernel):
    torch.manual_seed(0)
    model = Model()
    extra = {"momentum": 0.9, "nesterov": True} if name == "SGD" else {}
    optimizer = getattr(torch.optim, name)(_groups(model), lr=0.01, **extra, **kernel)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 3, 6, 6, generator=generator)
        y = torch.randint(0, 5, (8,), generator=generator)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.state_dict(), optimizer


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD"])
def test_foreach_kernels_update_like_the_plain_loop(name):
    plain, plain_opt = _train(name, foreach=False)
    multi, multi_opt = _train(name, foreach=True)
    assert len(plain_opt.param_groups) == 5  # FastReID's groups survive the kernel choice
    for key in plain:
        torch.testing.assert_close(multi[key], plain[key], rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(multi[k], _train(name, steps=0)[0][k]) for k in multi)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD"])
def test_fused_cpu_kernels_update_like_the_plain_loop(name):
    plain, _ = _train(name, foreach=False)
    try:
        fused, _ = _train(name, fused=True)
    except RuntimeError as e:  # an older torch without fused CPU kernels
        pytest.skip(f"torch has no fused CPU {name}: {e}")
    for key in plain:
        torch.testing.assert_close(fused[key], plain[key], rtol=1e-5, atol=1e-6)


def test_kernel_options_per_device_and_key():
    assert kernel_options("Adam", "cuda", fused=True) == {"fused": True}
    assert kernel_options("SGD", "cuda", fused=True) == {"fused": True}
    assert kernel_options("Adam", "cuda", fused=False) == {"foreach": True}
    assert kernel_options("RMSprop", "cuda", fused=True) == {"foreach": True}
    assert kernel_options("Adam", "cuda", fused=True, capturable=True) == {
        "fused": True,
        "capturable": True,
    }
    assert kernel_options("SGD", "cuda", fused=False, capturable=True) == {"foreach": True}
    # The CPU keeps torch's defaults, so CPU training, its goldens and resumes are unchanged.
    assert kernel_options("Adam", "cpu", fused=True, capturable=True) == {}


def test_build_optimizer_on_the_cpu_is_unchanged_by_the_keys():
    states = []
    for fused, graph in ((False, False), (True, True)):
        cfg = get_cfg()
        cfg.SOLVER.FUSED = fused
        cfg.SOLVER.CUDA_GRAPH = graph
        torch.manual_seed(0)
        optimizer = build_optimizer(cfg, Model())
        group = optimizer.param_groups[0]
        assert not group["fused"] and not group["capturable"] and group["foreach"] is None
        states.append([(g["name"], g["lr"], g["weight_decay"]) for g in optimizer.param_groups])
    assert states[0] == states[1]
