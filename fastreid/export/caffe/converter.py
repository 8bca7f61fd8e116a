"""Turn a recorded :class:`~.graph.Graph` into Caffe layers (prototxt + caffemodel messages).

Supported: Conv2d, BatchNorm (1d/2d, frozen), InstanceNorm2d (as MVN + Scale, for IBN),
ReLU / LeakyReLU, Sigmoid, Max/Avg/adaptive/global pooling, Linear, Flatten / view / reshape,
concatenation, split (Slice), residual sums (Eltwise), per-channel gating (SE, Scale with two
bottoms), per-channel constants (pixel mean/std -> Scale), scalar arithmetic, pow and clamp
(GeM pooling -> Power / ReLU). Anything else raises :class:`UnsupportedLayerError` naming the
module and its type.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
from torch import nn

from .graph import Graph, Node, Value

__all__ = ["CaffeConverter", "UnsupportedLayerError", "is_leaf_module"]


class UnsupportedLayerError(NotImplementedError):
    """A module or operation has no Caffe equivalent in this exporter."""


def _frozen_bn_type() -> Optional[type]:
    try:
        from fastreid.modeling.layers.batch_norm import FrozenBatchNorm
    except ImportError:
        return None
    return FrozenBatchNorm


_LEAF_TYPES: tuple[type, ...] = (
    nn.Conv2d,
    nn.modules.batchnorm._BatchNorm,
    nn.InstanceNorm2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Linear,
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
)


def is_leaf_module(module: nn.Module) -> bool:
    """Modules converted as one unit (their inner operations are not recorded)."""
    frozen = _frozen_bn_type()
    return isinstance(module, _LEAF_TYPES) or (frozen is not None and isinstance(module, frozen))


def _pair(value: Union[int, tuple, list]) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (value, value)


def _packed_floats(tensor: torch.Tensor) -> bytes:
    """``BlobProto.data`` (field 5, packed float) encoded directly: fast for large weights."""
    raw = tensor.detach().float().cpu().contiguous().numpy().astype("<f4").tobytes()
    length, header = len(raw), bytearray([(5 << 3) | 2])
    while True:
        byte = length & 0x7F
        length >>= 7
        header.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(header) + raw


Operand = Union[Value, torch.Tensor, float, int]

_ADD = {"add", "__add__", "__radd__", "add_", "__iadd__"}
_SUB = {"sub", "__sub__", "sub_", "__isub__", "subtract"}
_MUL = {"mul", "__mul__", "__rmul__", "mul_", "__imul__", "multiply"}
_DIV = {"div", "__truediv__", "div_", "__itruediv__", "true_divide", "divide"}
_ALIAS = {"contiguous", "clone", "detach", "float", "to", "expand_as", "expand", "dropout"}
_RESHAPE = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "__getitem__", "squeeze_"}


class CaffeConverter:
    """Build the Caffe ``NetParameter`` of a recorded graph.

    ``prototxt`` receives the layer definitions, ``weights`` the same layers (name, type,
    bottoms, tops) with their parameter blobs: the caffemodel.
    """

    def __init__(self, messages: Any, name: str) -> None:
        self.pb = messages
        self.prototxt = messages.NetParameter(name=name)
        self.weights = messages.NetParameter(name=name)
        self.blob: dict[str, str] = {}  # graph value name -> Caffe blob name
        self.shape: dict[str, tuple[int, ...]] = {}  # Caffe blob name -> shape
        self.layer_names: set[str] = set()
        self.node: Optional[Node] = None

    # -- helpers ------------------------------------------------------------------------
    def unsupported(self, what: str) -> UnsupportedLayerError:
        node = self.node
        where = f"module '{node.scope}' ({node.scope_type})" if node and node.scope else "the model"
        return UnsupportedLayerError(
            f"Caffe export does not support {what} in {where}. Supported: ResNet-family "
            "backbones (IBN, SE), the standard heads and pooling layers; export this model to "
            "ONNX or TorchScript instead."
        )

    def unique(self, name: str) -> str:
        base, k = name or "layer", 1
        while name in self.layer_names or not name:
            k += 1
            name = f"{base}_{k}"
        self.layer_names.add(name)
        return name

    def bottom(self, value: Value) -> str:
        return self.blob[value.name]

    def add(
        self,
        type_name: str,
        bottoms: list[str],
        top_shape: tuple[int, ...],
        name: Optional[str] = None,
        blobs: tuple[torch.Tensor, ...] = (),
        top: Optional[str] = None,
        **params: dict,
    ) -> str:
        """Append a layer to both nets; returns its top blob name."""
        layer_name = self.unique(name or (self.node.scope if self.node else "") or type_name)
        top = top or layer_name
        for net, with_params in ((self.prototxt, True), (self.weights, False)):
            layer = net.layer.add(name=layer_name, type=type_name)
            layer.bottom.extend(bottoms)
            layer.top.append(top)
            if with_params:
                for key, fields in params.items():
                    message = getattr(layer, key)
                    for field, value in fields.items():
                        target = getattr(message, field)
                        if isinstance(value, (list, tuple)):
                            target.extend(value)
                        elif hasattr(target, "CopyFrom") and not isinstance(value, (int, float)):
                            target.CopyFrom(value)
                        else:
                            setattr(message, field, value)
                    message.SetInParent()
            else:
                for tensor in blobs:
                    blob = layer.blobs.add()
                    blob.shape.dim.extend(list(tensor.shape))
                    blob.MergeFromString(_packed_floats(tensor))
        self.shape[top] = tuple(top_shape)
        return top

    def finish(self, node: Node, tops: list[str]) -> None:
        for value, top in zip(node.outputs, tops):
            self.blob[value.name] = top

    # -- entry point ----------------------------------------------------------------------
    def convert(self, graph: Graph) -> None:
        """Convert every node that contributes to the graph output, in execution order."""
        shape = list(graph.input.shape)
        shape[0] = 1
        self.add(
            "Input",
            [],
            tuple(graph.input.shape),
            name="data",
            top="data",
            input_param={"shape": [self.pb.BlobShape(dim=shape)]},
        )
        self.blob[graph.input.name] = "data"
        needed = {v.name for v in graph.outputs}
        live: list[Node] = []
        for node in reversed(graph.nodes):
            if any(v.name in needed for v in node.outputs):
                live.append(node)
                needed.update(v.name for v in node.inputs)
        for node in reversed(live):
            self.node = node
            tops = (
                self.convert_module(node)
                if node.module is not None
                else self.convert_function(node)
            )
            self.finish(node, tops)
        self.node = None
        self.output = self.blob[graph.outputs[0].name]

    # -- modules --------------------------------------------------------------------------
    def convert_module(self, node: Node) -> list[str]:
        module = node.module
        (value,) = node.inputs[:1]
        out_shape = node.outputs[0].shape
        src = self.bottom(value)
        frozen = _frozen_bn_type()
        if isinstance(module, nn.Conv2d):
            return [self.conv(src, module.weight, module.bias, module, out_shape)]
        if isinstance(module, nn.modules.batchnorm._BatchNorm) or (
            frozen is not None and isinstance(module, frozen)
        ):
            return [self.batch_norm(src, module, out_shape)]
        if isinstance(module, nn.InstanceNorm2d):
            if module.track_running_stats:
                return [self.batch_norm(src, module, out_shape)]
            top = self.add(
                "MVN",
                [src],
                out_shape,
                name=node.scope,
                mvn_param={
                    "normalize_variance": True,
                    "across_channels": False,
                    "eps": float(module.eps),
                },
            )
            if module.affine:
                top = self.add(
                    "Scale",
                    [top],
                    out_shape,
                    name=f"{node.scope}.scale",
                    blobs=(module.weight, module.bias),
                    scale_param={"bias_term": True},
                )
            return [top]
        if isinstance(module, (nn.ReLU, nn.LeakyReLU)):
            slope = float(getattr(module, "negative_slope", 0.0))
            params = {"relu_param": {"negative_slope": slope}} if slope else {}
            return [self.add("ReLU", [src], out_shape, **params)]
        if isinstance(module, nn.Sigmoid):
            return [self.add("Sigmoid", [src], out_shape)]
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            return [self.pool(src, module, out_shape)]
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            method = 1 if isinstance(module, nn.AdaptiveAvgPool2d) else 0
            return [self.adaptive_pool(src, method, module.output_size, out_shape)]
        if isinstance(module, nn.Linear):
            return [self.linear(src, module.weight, module.bias)]
        if isinstance(module, nn.Flatten):
            return [self.reshape(src, out_shape)]
        if isinstance(module, (nn.Identity, nn.Dropout)):
            return [src]
        raise self.unsupported(f"layer type {type(module).__name__}")

    def conv(self, src, weight, bias, module: Any, out_shape) -> str:
        if getattr(module, "padding_mode", "zeros") != "zeros":
            raise self.unsupported(f"padding_mode='{module.padding_mode}'")
        if isinstance(module.padding, str):
            raise self.unsupported(f"padding='{module.padding}'")
        kh, kw = _pair(module.kernel_size)
        sh, sw = _pair(module.stride)
        ph, pw = _pair(module.padding)
        dh, dw = _pair(module.dilation)
        params = {
            "num_output": int(weight.shape[0]),
            "bias_term": bias is not None,
            "group": int(module.groups),
            "kernel_h": kh,
            "kernel_w": kw,
            "stride_h": sh,
            "stride_w": sw,
            "pad_h": ph,
            "pad_w": pw,
        }
        if (dh, dw) != (1, 1):
            params["dilation"] = [dh] if dh == dw else [dh, dw]
        blobs = (weight,) if bias is None else (weight, bias)
        return self.add("Convolution", [src], out_shape, blobs=blobs, convolution_param=params)

    def batch_norm(self, src, module: Any, out_shape) -> str:
        mean, var = module.running_mean, module.running_var
        if mean is None or var is None:
            raise self.unsupported("batch norm without running statistics")
        name = self.unique(self.node.scope or "bn")
        self.layer_names.discard(name)
        top = self.add(
            "BatchNorm",
            [src],
            out_shape,
            name=name,
            blobs=(mean, var, torch.ones(1)),
            batch_norm_param={"use_global_stats": True, "eps": float(module.eps)},
        )
        weight = getattr(module, "weight", None)
        bias = getattr(module, "bias", None)
        if weight is None and bias is None:
            return top
        weight = weight if weight is not None else torch.ones_like(mean)
        bias = bias if bias is not None else torch.zeros_like(mean)
        return self.add(
            "Scale",
            [top],
            out_shape,
            name=f"{name}.scale",
            blobs=(weight, bias),
            scale_param={"bias_term": True},
        )

    def pool(self, src, module: Any, out_shape) -> str:
        is_max = isinstance(module, nn.MaxPool2d)
        if is_max and _pair(module.dilation) != (1, 1):
            raise self.unsupported("dilated max pooling")
        kh, kw = _pair(module.kernel_size)
        sh, sw = _pair(module.stride if module.stride is not None else module.kernel_size)
        ph, pw = _pair(module.padding)
        if not is_max and (ph or pw) and not module.count_include_pad:
            raise self.unsupported("average pooling with count_include_pad=False and padding")
        in_shape = self.shape[src]
        params = {
            "pool": 0 if is_max else 1,
            "kernel_h": kh,
            "kernel_w": kw,
            "stride_h": sh,
            "stride_w": sw,
            "pad_h": ph,
            "pad_w": pw,
        }
        # Caffe rounds the output size up; PyTorch (ceil_mode=False) down.
        ceil_h = math.ceil((in_shape[2] + 2 * ph - kh) / sh) + 1
        ceil_w = math.ceil((in_shape[3] + 2 * pw - kw) / sw) + 1
        if (ceil_h, ceil_w) != tuple(out_shape[2:]):
            params["ceil_mode"] = False
        return self.add("Pooling", [src], out_shape, pooling_param=params)

    def adaptive_pool(self, src, method: int, output_size, out_shape) -> str:
        in_shape = self.shape[src]
        oh, ow = _pair(output_size)
        oh, ow = oh or in_shape[2], ow or in_shape[3]
        if (oh, ow) == (1, 1):
            return self.add(
                "Pooling", [src], out_shape, pooling_param={"pool": method, "global_pooling": True}
            )
        if in_shape[2] % oh or in_shape[3] % ow:
            raise self.unsupported(f"adaptive pooling to {(oh, ow)} from {in_shape[2:]}")
        kh, kw = in_shape[2] // oh, in_shape[3] // ow
        return self.add(
            "Pooling",
            [src],
            out_shape,
            pooling_param={
                "pool": method,
                "kernel_h": kh,
                "kernel_w": kw,
                "stride_h": kh,
                "stride_w": kw,
            },
        )

    def linear(self, src, weight, bias) -> str:
        if len(self.shape[src]) != 2:
            raise self.unsupported(f"Linear on a {len(self.shape[src])}-d input")
        blobs = (weight,) if bias is None else (weight, bias)
        out_shape = (self.shape[src][0], int(weight.shape[0]))
        return self.add(
            "InnerProduct",
            [src],
            out_shape,
            blobs=blobs,
            inner_product_param={"num_output": int(weight.shape[0]), "bias_term": bias is not None},
        )

    def reshape(self, src, out_shape) -> str:
        in_shape = self.shape[src]
        if tuple(in_shape) == tuple(out_shape):
            return src
        if out_shape[0] != in_shape[0] or math.prod(out_shape) != math.prod(in_shape):
            raise self.unsupported(f"reshape {in_shape} -> {tuple(out_shape)} across the batch")
        if len(out_shape) == 2:
            return self.add("Flatten", [src], out_shape, flatten_param={"axis": 1})
        dims = [0] + [int(d) for d in out_shape[1:]]
        return self.add(
            "Reshape", [src], out_shape, reshape_param={"shape": self.pb.BlobShape(dim=dims)}
        )

    # -- functions ------------------------------------------------------------------------
    def operand(self, obj: Any) -> Operand:
        if isinstance(obj, Value):
            return obj
        if isinstance(obj, torch.Tensor) and obj.numel() == 1:
            return float(obj.detach().reshape(-1)[0])
        return obj

    def convert_function(self, node: Node) -> list[str]:
        name = node.op_name
        args = node.args
        out_shape = node.outputs[0].shape
        if name in _ALIAS or (
            name == "__getitem__" and self.shape[self.bottom(args[0])] == out_shape
        ):
            return [self.bottom(node.inputs[0])]
        if name in _RESHAPE:
            return [self.reshape(self.bottom(node.inputs[0]), out_shape)]
        if name in _ADD | _SUB | _MUL | _DIV or name in ("__rsub__", "__rtruediv__"):
            return [self.binary(name, args, node.kwargs, out_shape)]
        if name in ("relu", "relu_"):
            return [self.add("ReLU", [self.bottom(node.inputs[0])], out_shape)]
        if name in ("sigmoid", "sigmoid_"):
            return [self.add("Sigmoid", [self.bottom(node.inputs[0])], out_shape)]
        if name == "leaky_relu":
            slope = float(args[1] if len(args) > 1 else node.kwargs.get("negative_slope", 0.01))
            return [
                self.add(
                    "ReLU",
                    [self.bottom(node.inputs[0])],
                    out_shape,
                    relu_param={"negative_slope": slope},
                )
            ]
        if name in ("pow", "__pow__"):
            exponent = self.operand(args[1] if len(args) > 1 else node.kwargs["exponent"])
            if not isinstance(exponent, (int, float)) or not isinstance(args[0], Value):
                raise self.unsupported("pow with a tensor exponent")
            return [self.power(self.bottom(args[0]), out_shape, power=float(exponent))]
        if name in ("clamp", "clamp_min", "clamp_", "clamp_min_"):
            return [self.clamp(node, out_shape)]
        if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            size = args[1] if len(args) > 1 else node.kwargs["output_size"]
            method = 1 if name == "adaptive_avg_pool2d" else 0
            return [self.adaptive_pool(self.bottom(args[0]), method, size, out_shape)]
        if name == "mean":
            return [self.mean(node, out_shape)]
        if name in ("cat", "concat", "concatenate"):
            return [self.concat(node, out_shape)]
        if name in ("split", "chunk", "split_with_sizes"):
            return self.split(node)
        if name == "linear":
            weight = args[1]
            bias = args[2] if len(args) > 2 else node.kwargs.get("bias")
            return [self.linear(self.bottom(args[0]), weight, bias)]
        if name == "batch_norm" and isinstance(args[0], Value):
            fake = nn.Module()
            fake.running_mean, fake.running_var = args[1], args[2]
            fake.weight = args[3] if len(args) > 3 else node.kwargs.get("weight")
            fake.bias = args[4] if len(args) > 4 else node.kwargs.get("bias")
            fake.eps = args[7] if len(args) > 7 else node.kwargs.get("eps", 1e-5)
            return [self.batch_norm(self.bottom(args[0]), fake, out_shape)]
        raise self.unsupported(f"operation '{name}'")

    def power(self, src, out_shape, power=1.0, scale=1.0, shift=0.0) -> str:
        return self.add(
            "Power",
            [src],
            out_shape,
            power_param={"power": float(power), "scale": float(scale), "shift": float(shift)},
        )

    def scale_by_constant(self, src, weight: torch.Tensor, bias: torch.Tensor, out_shape) -> str:
        return self.add(
            "Scale", [src], out_shape, blobs=(weight, bias), scale_param={"bias_term": True}
        )

    def per_channel(self, constant: torch.Tensor, shape: tuple[int, ...]) -> Optional[torch.Tensor]:
        """The constant as a (C,) vector when it broadcasts per channel (axis 1), else None."""
        channels = shape[1]
        squeezed = constant.detach().reshape(-1)
        if squeezed.numel() != channels:
            return None
        expected = [1, channels] + [1] * (len(shape) - 2)
        dims = list(constant.shape)
        while len(dims) < len(shape):
            dims.insert(0, 1)
        return squeezed.float() if dims == expected else None

    def binary(self, name: str, args: tuple, kwargs: dict, out_shape) -> str:
        a, b = self.operand(args[0]), self.operand(args[1] if len(args) > 1 else kwargs["other"])
        alpha = float(kwargs.get("alpha", 1.0))
        if name in ("__rsub__", "__rtruediv__"):  # b op a
            a, b = b, a
            name = "sub" if name == "__rsub__" else "div"
        kind = (
            "add" if name in _ADD else "sub" if name in _SUB else "mul" if name in _MUL else "div"
        )
        if isinstance(a, Value) and isinstance(b, Value):
            return self.binary_values(kind, a, b, alpha, out_shape)
        if not isinstance(a, Value):  # constant on the left
            if kind in ("add", "mul"):
                return self.binary(
                    name, (b, a), {"alpha": alpha} if kind == "add" else {}, out_shape
                )
            if kind == "sub":  # c - x
                if alpha != 1.0:
                    raise self.unsupported("rsub with alpha")
                if isinstance(a, (int, float)):
                    return self.power(self.bottom(b), out_shape, scale=-1.0, shift=a)
                vec = self.require_per_channel(a, self.shape[self.bottom(b)])
                return self.scale_by_constant(self.bottom(b), -torch.ones_like(vec), vec, out_shape)
            if isinstance(a, (int, float)):  # c / x
                inverse = self.power(self.bottom(b), out_shape, power=-1.0)
                return inverse if a == 1 else self.power(inverse, out_shape, scale=a)
            raise self.unsupported("division of a constant tensor by a tensor")
        src = self.bottom(a)
        if isinstance(b, (int, float)):
            b = float(b)
            if kind == "add":
                return self.power(src, out_shape, shift=alpha * b)
            if kind == "sub":
                return self.power(src, out_shape, shift=-alpha * b)
            if kind == "mul":
                return self.power(src, out_shape, scale=b)
            return self.power(src, out_shape, scale=1.0 / b)
        vec = self.require_per_channel(b, self.shape[src])
        ones, zeros = torch.ones_like(vec), torch.zeros_like(vec)
        if kind == "add":
            return self.scale_by_constant(src, ones, alpha * vec, out_shape)
        if kind == "sub":
            return self.scale_by_constant(src, ones, -alpha * vec, out_shape)
        if kind == "mul":
            return self.scale_by_constant(src, vec, zeros, out_shape)
        return self.scale_by_constant(src, 1.0 / vec, zeros, out_shape)

    def require_per_channel(self, constant: torch.Tensor, shape) -> torch.Tensor:
        vec = self.per_channel(constant, tuple(shape))
        if vec is None:
            raise self.unsupported(
                f"arithmetic with a constant of shape {tuple(constant.shape)} on {tuple(shape)}"
            )
        return vec

    def binary_values(self, kind: str, a: Value, b: Value, alpha: float, out_shape) -> str:
        sa, sb = self.bottom(a), self.bottom(b)
        shape_a, shape_b = self.shape[sa], self.shape[sb]
        if shape_a == shape_b:
            if kind == "div":
                raise self.unsupported("division of two tensors")
            if kind == "mul":
                return self.add("Eltwise", [sa, sb], out_shape, eltwise_param={"operation": 0})
            coeff = {"add": [1.0, alpha], "sub": [1.0, -alpha]}[kind]
            params = {"operation": 1}
            if coeff != [1.0, 1.0]:
                params["coeff"] = coeff
            return self.add("Eltwise", [sa, sb], out_shape, eltwise_param=params)
        if kind == "mul":
            big, small = (sa, sb) if math.prod(shape_a) >= math.prod(shape_b) else (sb, sa)
            big_shape, small_shape = self.shape[big], self.shape[small]
            if math.prod(small_shape) == big_shape[0] * big_shape[1] and (
                tuple(small_shape[:2]) == tuple(big_shape[:2])
            ):
                gate = small
                if len(small_shape) != 2:
                    gate = self.add(
                        "Flatten",
                        [small],
                        tuple(small_shape[:2]),
                        name=f"{self.node.scope}.flatten",
                        flatten_param={"axis": 1},
                    )
                # Caffe Scale with a second bottom of shape (N, C) and axis 0: per-sample gating.
                return self.add("Scale", [big, gate], out_shape, scale_param={"axis": 0})
        raise self.unsupported(f"broadcast '{kind}' of {shape_a} and {shape_b}")

    def clamp(self, node: Node, out_shape) -> str:
        args, kwargs = node.args, node.kwargs
        low = args[1] if len(args) > 1 else kwargs.get("min")
        high = args[2] if len(args) > 2 else kwargs.get("max")
        low = self.operand(low) if low is not None else None
        if high is not None or not isinstance(low, (int, float)):
            raise self.unsupported("clamp with an upper bound or tensor bounds")
        src = self.bottom(args[0])
        if low == 0:
            return self.add("ReLU", [src], out_shape)
        # max(x, m) = relu(x - m) + m
        shifted = self.power(src, out_shape, shift=-float(low))
        relu = self.add("ReLU", [shifted], out_shape)
        return self.power(relu, out_shape, shift=float(low))

    def mean(self, node: Node, out_shape) -> str:
        args, kwargs = node.args, node.kwargs
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        src = self.bottom(args[0])
        in_shape = self.shape[src]
        dims = sorted(d % len(in_shape) for d in ((dims,) if isinstance(dims, int) else dims or ()))
        if len(in_shape) != 4 or dims != [2, 3]:
            raise self.unsupported(f"mean over dims {dims}")
        pooled = self.add(
            "Pooling",
            [src],
            (in_shape[0], in_shape[1], 1, 1),
            pooling_param={"pool": 1, "global_pooling": True},
        )
        return self.reshape(pooled, out_shape)

    def concat(self, node: Node, out_shape) -> str:
        tensors = node.args[0]
        axis = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if not all(isinstance(t, Value) for t in tensors):
            raise self.unsupported("concatenation with a constant tensor")
        axis = axis % len(out_shape)
        if axis == 0:
            raise self.unsupported("concatenation along the batch axis")
        return self.add(
            "Concat", [self.bottom(t) for t in tensors], out_shape, concat_param={"axis": int(axis)}
        )

    def split(self, node: Node) -> list[str]:
        src_value = node.args[0]
        if not isinstance(src_value, Value):
            raise self.unsupported("split of a constant")
        axis = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        axis = axis % len(src_value.shape)
        if axis == 0:
            raise self.unsupported("split along the batch axis")
        points, position = [], 0
        for value in node.outputs[:-1]:
            position += value.shape[axis]
            points.append(position)
        layer = self.unique(node.scope or "slice")
        self.layer_names.discard(layer)
        tops = [f"{layer}.slice{k}" for k in range(len(node.outputs))]
        self.add(
            "Slice",
            [self.bottom(src_value)],
            node.outputs[0].shape,
            name=layer,
            top=tops[0],
            slice_param={"axis": int(axis), "slice_point": points},
        )
        for net in (self.prototxt, self.weights):
            net.layer[-1].top.extend(tops[1:])
        for top, value in zip(tops, node.outputs):
            self.shape[top] = value.shape
        return tops
