"""Optimizers from SOLVER.OPT with per-parameter-group learning rate and weight decay."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from fastreid.config import CfgNode

__all__ = [
    "build_optimizer",
    "get_default_optimizer_params",
    "optimizer_names",
    "kernel_options",
]

# torch.optim classes with a fused CUDA kernel (one launch updates every parameter).
FUSED_CUDA_OPTIMIZERS = ("Adam", "AdamW", "SGD")

# Normalization layers whose parameters take SOLVER.WEIGHT_DECAY_NORM.
NORM_MODULE_TYPES = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def optimizer_names() -> List[str]:
    """Names of the optimizers SOLVER.OPT accepts (every ``torch.optim.Optimizer`` class)."""
    names = []
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
        ):
            names.append(name)
    return sorted(names)


def get_default_optimizer_params(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    weight_decay_norm: Optional[float] = None,
    bias_lr_factor: float = 1.0,
    weight_decay_bias: Optional[float] = None,
    heads_lr_factor: float = 1.0,
) -> List[Dict[str, Any]]:
    """Parameter groups with their own ``lr`` / ``weight_decay``.

    * parameters of normalization layers: ``weight_decay_norm``;
    * biases: ``lr * bias_lr_factor`` and ``weight_decay_bias``;
    * parameters of the top-level module ``heads`` (and MGN's ``*_head`` modules):
      ``lr * heads_lr_factor``.

    Parameters of the same top-level module with the same ``lr`` and ``weight_decay`` share a
    group (few groups keep the optimizer's fused/foreach kernels efficient). Each group also
    carries ``name`` (the top-level module, e.g. ``"backbone"``; the unit of MODEL.FREEZE_LAYERS),
    ``param_names`` (full names of its parameters) and ``freeze_status`` (``"normal"``; the
    layer-freeze helper sets ``"freeze"``). Parameters with ``requires_grad=False`` (e.g. the
    BNNeck bias) are left out; shared parameters appear once. The order is deterministic, so an
    optimizer state dict restores onto a freshly built optimizer.
    """
    weight_decay_norm = weight_decay if weight_decay_norm is None else weight_decay_norm
    weight_decay_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    seen = set()
    groups: Dict[Tuple[str, float, float], Dict[str, Any]] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            lr = base_lr
            wd = weight_decay
            if isinstance(module, NORM_MODULE_TYPES):
                wd = weight_decay_norm
            if param_name == "bias":
                lr = base_lr * bias_lr_factor
                wd = weight_decay_bias
            top = module_name.split(".")[0]
            if top == "heads" or top.endswith("_head"):
                lr *= heads_lr_factor
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            key = (top, lr, wd)
            if key not in groups:
                groups[key] = {
                    "name": top,
                    "freeze_status": "normal",
                    "params": [],
                    "param_names": [],
                    "lr": lr,
                    "weight_decay": wd,
                }
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(full_name)
    return list(groups.values())


@functools.cache
def _with_freeze_support(optimizer_cls: Type[torch.optim.Optimizer]) -> Type[torch.optim.Optimizer]:
    """Subclass whose ``step`` leaves groups with ``freeze_status == "freeze"`` untouched.

    Their gradients are hidden during the step (no update, no momentum/moment change) and
    restored afterwards. This keeps every parameter in the optimizer, so DDP and checkpoints
    see the same parameters whether layers are frozen or not.
    """

    def step(self, closure=None):
        hidden = []
        for group in self.param_groups:
            if group.get("freeze_status") == "freeze":
                for p in group["params"]:
                    if p.grad is not None:
                        hidden.append((p, p.grad))
                        p.grad = None
        try:
            return optimizer_cls.step(self, closure)
        finally:
            for p, grad in hidden:
                p.grad = grad

    return type(optimizer_cls.__name__, (optimizer_cls,), {"step": step, "__module__": __name__})


def kernel_options(
    name: str, device_type: str, fused: bool, capturable: bool = False
) -> Dict[str, Any]:
    """Keyword arguments choosing the kernels of ``torch.optim.<name>`` on ``device_type``.

    On CUDA: ``fused=True`` for the classes in :data:`FUSED_CUDA_OPTIMIZERS` when ``fused``,
    otherwise ``foreach=True`` where the class offers it; ``capturable=True`` where accepted
    when the step is captured in a CUDA graph. Elsewhere: nothing (torch's defaults), so CPU
    training keeps its exact arithmetic.
    """
    if device_type != "cuda":
        return {}
    accepted = inspect.signature(getattr(torch.optim, name).__init__).parameters
    kwargs: Dict[str, Any] = {}
    if fused and name in FUSED_CUDA_OPTIMIZERS and "fused" in accepted:
        kwargs["fused"] = True
    elif "foreach" in accepted:
        kwargs["foreach"] = True
    if capturable and "capturable" in accepted:
        kwargs["capturable"] = True
    return kwargs


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer named by ``SOLVER.OPT`` over the param groups above.

    SGD gets ``SOLVER.MOMENTUM`` and ``SOLVER.NESTEROV``. On CUDA, ``SOLVER.FUSED`` picks the
    fused (else foreach) kernels and ``SOLVER.CUDA_GRAPH`` makes the optimizer capturable (see
    :func:`kernel_options`); the param groups are the same either way. The optimizer's class is a thin
    subclass of the torch class (``isinstance(opt, torch.optim.Adam)`` holds) that honours
    frozen groups (see :func:`fastreid.solver.freeze.set_layers_frozen`).
    """
    solver = cfg.SOLVER
    name = solver.OPT
    valid = optimizer_names()
    if name not in valid:
        raise KeyError(f"Unknown SOLVER.OPT '{name}'; choose one of {', '.join(valid)}.")
    for key in ("BASE_LR", "BIAS_LR_FACTOR", "HEADS_LR_FACTOR", "WEIGHT_DECAY"):
        if float(solver[key]) < 0:
            raise ValueError(
                f"SOLVER.{key} is {solver[key]}; it must be >= 0 (a negative learning rate or "
                f"weight decay climbs the loss instead of descending it). Set SOLVER.{key} to "
                "a value >= 0."
            )
    groups = get_default_optimizer_params(
        model,
        base_lr=solver.BASE_LR,
        weight_decay=solver.WEIGHT_DECAY,
        weight_decay_norm=solver.WEIGHT_DECAY_NORM,
        bias_lr_factor=solver.BIAS_LR_FACTOR,
        weight_decay_bias=solver.WEIGHT_DECAY_BIAS,
        heads_lr_factor=solver.HEADS_LR_FACTOR,
    )
    if not groups:
        raise ValueError("The model has no trainable parameters; nothing to optimize.")
    optimizer_cls = getattr(torch.optim, name)
    accepted = inspect.signature(optimizer_cls.__init__).parameters
    kwargs: Dict[str, Any] = {"lr": solver.BASE_LR}
    if name == "SGD":
        kwargs.update(momentum=solver.MOMENTUM, nesterov=solver.NESTEROV)
    if "weight_decay" not in accepted:
        for group in groups:
            group.pop("weight_decay")
    device_type = groups[0]["params"][0].device.type
    kwargs.update(
        kernel_options(
            name,
            device_type,
            bool(solver.get("FUSED", False)),
            capturable=bool(solver.get("CUDA_GRAPH", False)),
        )
    )
    return _with_freeze_support(optimizer_cls)(groups, **kwargs)
