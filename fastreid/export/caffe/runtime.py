"""Run an exported Caffe model: OpenCV's dnn module, or a small reference interpreter.

OpenCV 5 dropped its Caffe importer; where ``cv2.dnn.readNetFromCaffe`` is missing, the
reference interpreter (PyTorch functional ops, Caffe semantics) reads the same prototxt and
caffemodel back through protobuf and runs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..dependencies import require
from .proto import caffe_pb2

__all__ = ["CaffeReferenceRunner", "OpenCVCaffeRunner", "caffe_runner", "opencv_has_caffe"]


def opencv_has_caffe() -> bool:
    """Whether the installed OpenCV can import Caffe models (OpenCV 4.x; not 5.x)."""
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(cv2.dnn, "readNetFromCaffe")


def _check_files(prototxt, caffemodel) -> None:
    for path in (prototxt, caffemodel):
        if not Path(path).is_file():
            raise FileNotFoundError(f"Caffe file '{path}' does not exist (run caffe_export.py).")


class OpenCVCaffeRunner:
    """``cv2.dnn.readNetFromCaffe(prototxt, caffemodel)``: ``runner(images) -> features``."""

    def __init__(self, prototxt: str | os.PathLike, caffemodel: str | os.PathLike) -> None:
        cv2 = require("cv2", "Caffe inference with OpenCV")
        _check_files(prototxt, caffemodel)
        if not hasattr(cv2.dnn, "readNetFromCaffe"):
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no Caffe importer (removed in OpenCV 5); install "
                "opencv-python-headless<5 or use the reference backend."
            )
        self.net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(B, 3, H, W)`` float32 0-255 RGB -> raw features ``(B, D)``."""
        self.net.setInput(np.ascontiguousarray(images, dtype=np.float32))
        return np.asarray(self.net.forward()).reshape(len(images), -1)


def _blob(proto: Any) -> torch.Tensor:
    data = np.asarray(proto.data, dtype=np.float32)
    return torch.from_numpy(data).reshape(list(proto.shape.dim))


class CaffeReferenceRunner:
    """Interpret the exported prototxt + caffemodel with Caffe's layer semantics."""

    def __init__(self, prototxt: str | os.PathLike, caffemodel: str | os.PathLike) -> None:
        from google.protobuf import text_format

        _check_files(prototxt, caffemodel)
        pb = caffe_pb2()
        self.net = text_format.Parse(Path(prototxt).read_text(), pb.NetParameter())
        weights = pb.NetParameter()
        weights.ParseFromString(Path(caffemodel).read_bytes())
        self.blobs = {layer.name: [_blob(b) for b in layer.blobs] for layer in weights.layer}

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(B, 3, H, W)`` float32 0-255 RGB -> raw features ``(B, D)``."""
        values: dict[str, torch.Tensor] = {}
        last = None
        for layer in self.net.layer:
            inputs = [values[name] for name in layer.bottom]
            if layer.type == "Input":
                outputs = [torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))]
            else:
                outputs = self.run_layer(layer, inputs, self.blobs.get(layer.name, []))
            for name, tensor in zip(layer.top, outputs):
                values[name] = tensor
            last = outputs[0]
        return last.reshape(len(images), -1).numpy()

    def run_layer(self, layer: Any, x: list[torch.Tensor], blobs: list[torch.Tensor]) -> list:
        kind = layer.type
        if kind == "Convolution":
            p = layer.convolution_param
            dilation = tuple(p.dilation) if len(p.dilation) else (1,)
            dilation = dilation * 2 if len(dilation) == 1 else dilation
            return [
                F.conv2d(
                    x[0],
                    blobs[0],
                    blobs[1] if p.bias_term else None,
                    (p.stride_h, p.stride_w),
                    (p.pad_h, p.pad_w),
                    dilation,
                    p.group,
                )
            ]
        if kind == "BatchNorm":
            factor = float(blobs[2].reshape(-1)[0])
            factor = 0.0 if factor == 0 else 1.0 / factor
            shape = [1, -1] + [1] * (x[0].dim() - 2)
            mean, var = blobs[0] * factor, blobs[1] * factor
            eps = layer.batch_norm_param.eps
            return [(x[0] - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)]
        if kind == "Scale":
            axis = layer.scale_param.axis
            if len(x) == 2:
                gate = x[1].reshape(list(x[1].shape) + [1] * (x[0].dim() - axis - x[1].dim()))
                return [x[0] * gate]
            shape = [1] * x[0].dim()
            shape[axis] = -1
            out = x[0] * blobs[0].view(shape)
            if layer.scale_param.bias_term:
                out = out + blobs[1].view(shape)
            return [out]
        if kind == "ReLU":
            slope = layer.relu_param.negative_slope
            return [F.leaky_relu(x[0], slope) if slope else F.relu(x[0])]
        if kind == "Sigmoid":
            return [torch.sigmoid(x[0])]
        if kind == "Pooling":
            return [self.pooling(layer.pooling_param, x[0])]
        if kind == "Eltwise":
            p = layer.eltwise_param
            if p.operation == 0:
                return [x[0] * x[1]]
            if p.operation == 2:
                return [torch.maximum(x[0], x[1])]
            coeff = list(p.coeff) or [1.0] * len(x)
            return [sum(c * t for c, t in zip(coeff, x))]
        if kind == "InnerProduct":
            p = layer.inner_product_param
            return [F.linear(x[0].flatten(p.axis), blobs[0], blobs[1] if p.bias_term else None)]
        if kind == "Flatten":
            return [x[0].flatten(layer.flatten_param.axis, layer.flatten_param.end_axis)]
        if kind == "Reshape":
            dims = [
                x[0].shape[i] if d == 0 else d for i, d in enumerate(layer.reshape_param.shape.dim)
            ]
            return [x[0].reshape(dims)]
        if kind == "Concat":
            return [torch.cat(x, dim=layer.concat_param.axis)]
        if kind == "Slice":
            axis = layer.slice_param.axis
            bounds = [0, *layer.slice_param.slice_point, x[0].shape[axis]]
            return [x[0].narrow(axis, a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]
        if kind == "MVN":
            p = layer.mvn_param
            dims = tuple(range(1 if p.across_channels else 2, x[0].dim()))
            centred = x[0] - x[0].mean(dim=dims, keepdim=True)
            if not p.normalize_variance:
                return [centred]
            std = centred.pow(2).mean(dim=dims, keepdim=True).sqrt()
            return [centred / (std + p.eps)]
        if kind == "Power":
            p = layer.power_param
            return [(p.shift + p.scale * x[0]).pow(p.power)]
        raise NotImplementedError(f"Reference runner: unknown layer type '{kind}' ({layer.name}).")

    @staticmethod
    def pooling(p: Any, x: torch.Tensor) -> torch.Tensor:
        if p.global_pooling:
            return x.amax(dim=(2, 3), keepdim=True) if p.pool == 0 else x.mean((2, 3), keepdim=True)
        kernel, stride, pad = (p.kernel_h, p.kernel_w), (p.stride_h, p.stride_w), (p.pad_h, p.pad_w)
        ceil = p.ceil_mode
        if p.pool == 0:
            return F.max_pool2d(x, kernel, stride, pad, ceil_mode=ceil)
        return F.avg_pool2d(x, kernel, stride, pad, ceil_mode=ceil, count_include_pad=True)


def caffe_runner(
    prototxt: str | os.PathLike, caffemodel: str | os.PathLike, backend: str = "auto"
) -> Any:
    """A runner for the exported files: ``"opencv"``, ``"reference"`` or ``"auto"`` (OpenCV
    when it can import Caffe models, else the reference interpreter)."""
    if backend == "auto":
        backend = "opencv" if opencv_has_caffe() else "reference"
    if backend == "opencv":
        return OpenCVCaffeRunner(prototxt, caffemodel)
    if backend == "reference":
        return CaffeReferenceRunner(prototxt, caffemodel)
    raise ValueError(f"Unknown Caffe backend '{backend}'; use auto, opencv or reference.")
