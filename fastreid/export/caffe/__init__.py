"""Caffe export: ``NAME.prototxt`` + ``NAME.caffemodel`` written through protobuf.

The model is traced once (see :mod:`.graph`), converted layer by layer (see :mod:`.converter`)
and written atomically; no Caffe installation is needed. OpenCV's dnn module (4.x) loads the
result with ``cv2.dnn.readNetFromCaffe``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from .converter import CaffeConverter, UnsupportedLayerError, is_leaf_module
from .graph import trace_graph
from .proto import caffe_pb2
from .runtime import (
    CaffeReferenceRunner,
    OpenCVCaffeRunner,
    caffe_runner,
    opencv_has_caffe,
)

__all__ = [
    "CaffeReferenceRunner",
    "OpenCVCaffeRunner",
    "UnsupportedLayerError",
    "caffe_runner",
    "convert_to_caffe",
    "export_caffe",
    "opencv_has_caffe",
]

logger = logging.getLogger(__name__)


def convert_to_caffe(model: nn.Module, input_size: Sequence[int], name: str = "model"):
    """Trace ``model`` and return ``(prototxt_net, caffemodel_net)`` NetParameter messages.

    Raises :class:`UnsupportedLayerError` naming the module when a layer has no Caffe form.
    """
    model = model.eval()  # traced directly so layer names are the module names
    device = next(iter(model.parameters())).device
    example = torch.rand(2, 3, int(input_size[0]), int(input_size[1]), device=device) * 255.0
    graph = trace_graph(model, example, is_leaf_module)
    converter = CaffeConverter(caffe_pb2(), name)
    converter.convert(graph)
    return converter.prototxt, converter.weights


def export_caffe(
    model: nn.Module, output_dir: str | os.PathLike, name: str, input_size: Sequence[int]
) -> tuple[Path, Path]:
    """Write ``output_dir/NAME.prototxt`` and ``output_dir/NAME.caffemodel``; return both paths."""
    from google.protobuf import text_format

    prototxt, weights = convert_to_caffe(
        model.cpu() if _on_cuda(model) else model, input_size, name
    )
    output_dir = Path(output_dir)
    proto_path = output_dir / f"{name}.prototxt"
    model_path = output_dir / f"{name}.caffemodel"
    with atomic_path(proto_path) as tmp_proto, atomic_path(model_path) as tmp_model:
        tmp_proto.write_text(text_format.MessageToString(prototxt))
        tmp_model.write_bytes(weights.SerializeToString())
    logger.info("Wrote %s and %s (%d layers)", proto_path, model_path, len(prototxt.layer))
    return proto_path, model_path


def _on_cuda(model: nn.Module) -> bool:
    return any(p.is_cuda for p in model.parameters())
