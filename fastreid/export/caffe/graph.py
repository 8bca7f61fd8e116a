"""Record the operations a model runs on one batch, as a flat graph for the Caffe converter.

The model runs once under a ``TorchFunctionMode``: every torch function applied to a traced
tensor becomes a :class:`Node`, except inside *leaf* modules (convolution, batch norm,
pooling, ...), which become one node each. Because the model really runs, Python control flow,
shapes and parameter values are all concrete; each node keeps its module path so that an
unsupported operation can be reported with the module that issued it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["Graph", "Node", "Value", "trace_graph"]


@dataclass
class Value:
    """A tensor flowing through the graph (a Caffe blob)."""

    name: str
    shape: tuple[int, ...]


@dataclass
class Node:
    """One recorded operation.

    ``module`` is set for leaf modules, ``func`` for torch functions. ``args`` / ``kwargs``
    are the call arguments with traced tensors replaced by their :class:`Value`; other tensors
    (parameters, buffers, constants) are kept as tensors.
    """

    scope: str
    scope_type: str
    inputs: list[Value]
    outputs: list[Value]
    module: Optional[nn.Module] = None
    func: Optional[Callable] = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    @property
    def op_name(self) -> str:
        """Readable operation name (module class or function name)."""
        if self.module is not None:
            return type(self.module).__name__
        return getattr(self.func, "__name__", repr(self.func))


@dataclass
class Graph:
    """Recorded nodes in execution order, with the input and output values."""

    input: Value
    outputs: list[Value]
    nodes: list[Node]


# Functions that only read metadata or do nothing to values.
_IGNORED = {"dim", "size", "numel", "__len__", "__get__", "__format__", "__bool__", "item"}


class _Recorder(TorchFunctionMode):
    def __init__(self, is_leaf: Callable[[nn.Module], bool]) -> None:
        super().__init__()
        self.is_leaf = is_leaf
        self.values: dict[int, Value] = {}
        self.keep_alive: list[torch.Tensor] = []
        self.nodes: list[Node] = []
        self.scopes: list[tuple[str, nn.Module]] = []
        self.leaf_depth = 0
        self.leaf_inputs: list[list[Value]] = []
        self.counter = 0

    # -- values -----------------------------------------------------------------------------
    def new_value(self, tensor: torch.Tensor, hint: str) -> Value:
        self.counter += 1
        value = Value(
            f"{hint}_{self.counter}" if hint else f"blob_{self.counter}", tuple(tensor.shape)
        )
        self.values[id(tensor)] = value
        self.keep_alive.append(tensor)
        return value

    def lookup(self, obj: Any) -> Optional[Value]:
        return self.values.get(id(obj)) if isinstance(obj, torch.Tensor) else None

    def substitute(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return self.lookup(obj) or obj
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.substitute(item) for item in obj)
        return obj

    def traced_inputs(self, obj: Any) -> list[Value]:
        found: list[Value] = []
        if isinstance(obj, torch.Tensor):
            value = self.lookup(obj)
            if value is not None:
                found.append(value)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                found.extend(self.traced_inputs(item))
        elif isinstance(obj, dict):
            for item in obj.values():
                found.extend(self.traced_inputs(item))
        return found

    def output_tensors(self, out: Any) -> list[torch.Tensor]:
        if isinstance(out, torch.Tensor):
            return [out]
        if isinstance(out, (list, tuple)):
            return [t for t in out if isinstance(t, torch.Tensor)]
        return []

    def scope(self) -> tuple[str, str]:
        if not self.scopes:
            return "", ""
        name, module = self.scopes[-1]
        return name, type(module).__name__

    # -- hooks ------------------------------------------------------------------------------
    def pre_hook(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            self.scopes.append((name, module))
            if self.leaf_depth == 0 and self.is_leaf(module):
                self.leaf_inputs.append(self.traced_inputs(args))
                self.leaf_depth = 1
            elif self.leaf_depth:
                self.leaf_depth += 1

        return hook

    def post_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: Any) -> None:
            self.scopes.pop()
            if self.leaf_depth:
                self.leaf_depth -= 1
                if self.leaf_depth == 0:
                    inputs = self.leaf_inputs.pop()
                    outputs = [self.new_value(t, name) for t in self.output_tensors(out)]
                    self.nodes.append(
                        Node(name, type(module).__name__, inputs, outputs, module=module)
                    )

        return hook

    # -- functions --------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.leaf_depth or getattr(func, "__name__", "") in _IGNORED:
            return out
        inputs = self.traced_inputs(args) + self.traced_inputs(kwargs)
        tensors = self.output_tensors(out)
        if not inputs or not tensors:
            return out  # constants (parameters, buffers, shapes) are not part of the graph
        scope, scope_type = self.scope()
        node = Node(
            scope,
            scope_type,
            inputs,
            [],
            func=func,
            args=self.substitute(args),
            kwargs={k: self.substitute(v) for k, v in kwargs.items()},
        )
        node.outputs = [self.new_value(t, scope or "op") for t in tensors]
        self.nodes.append(node)
        return out


def trace_graph(
    model: nn.Module, example: torch.Tensor, is_leaf: Callable[[nn.Module], bool]
) -> Graph:
    """Run ``model(example)`` once and record its graph.

    Args:
        model: eval-mode model taking one image batch and returning one tensor.
        example: input batch.
        is_leaf: modules for which one node is recorded instead of their inner operations.
    """
    recorder = _Recorder(is_leaf)
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(recorder.pre_hook(name)))
        handles.append(module.register_forward_hook(recorder.post_hook(name)))
    example = example.clone()
    graph_input = recorder.new_value(example, "")
    graph_input.name = "data"
    try:
        with torch.no_grad(), recorder:
            out = model(example)
    finally:
        for handle in handles:
            handle.remove()
    outputs = [recorder.lookup(t) for t in recorder.output_tensors(out)]
    if not outputs or any(v is None for v in outputs):
        raise RuntimeError("The model output does not depend on its input; nothing to export.")
    return Graph(graph_input, outputs, recorder.nodes)
