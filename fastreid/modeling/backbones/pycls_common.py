"""What FastReID's pycls networks (``build_effnet_backbone``, ``build_regnet_backbone``) share:
pycls's squeeze-excitation block, convolution initialisation, the stage loop over ``s1..sN``
and the pretrained-key filter."""

from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import nn

__all__ = ["SE", "init_pycls_convs", "run_stages", "drop_keys"]


class SE(nn.Module):
    """pycls's squeeze-excitation, ``x * sigmoid(fc(act(fc(avgpool(x)))))`` (names
    ``avg_pool``, ``f_ex.0/2``): ReLU inside in RegNet, Swish in EfficientNet."""

    def __init__(self, w_in: int, w_se: int, activation: nn.Module) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.f_ex = nn.Sequential(
            nn.Conv2d(w_in, w_se, 1, bias=True),
            activation,
            nn.Conv2d(w_se, w_in, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f_ex(self.avg_pool(x))


def init_pycls_convs(module: nn.Module) -> None:
    """pycls's initialisation: every conv weight ``N(0, sqrt(2 / fan_out))``, fan_out =
    k_h * k_w * out_channels / groups."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, mean=0.0, std=(2.0 / fan_out) ** 0.5)


def run_stages(module: nn.Module, x: torch.Tensor, num_stages: int) -> torch.Tensor:
    """``x`` through the blocks of stages ``s1 .. s{num_stages}``, in order."""
    for i in range(1, num_stages + 1):
        for block in getattr(module, f"s{i}").children():
            x = block(x)
    return x


def drop_keys(prefix: str) -> Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]:
    """A pretrained-state filter that leaves out the keys starting with ``prefix`` (the
    ImageNet classifier)."""
    return lambda state: {k: v for k, v in state.items() if not k.startswith(prefix)}
