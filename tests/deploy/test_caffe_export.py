"""Caffe export: prototxt + caffemodel through protobuf, checked with OpenCV dnn or the
reference interpreter (OpenCV 5 has no Caffe importer)."""

import pytest
import torch
from torch import nn

from fastreid.export.caffe import (
    CaffeReferenceRunner,
    OpenCVCaffeRunner,
    UnsupportedLayerError,
    export_caffe,
    opencv_has_caffe,
)

from .helpers import SIZE, ToyReID, assert_matches, build_recipe

pytest.importorskip("google.protobuf")


def test_toy_model_with_ibn_se_gem_matches(tmp_path):
    model = ToyReID().eval()
    prototxt, caffemodel = export_caffe(model, tmp_path, "toy", SIZE)
    assert_matches(model, CaffeReferenceRunner(prototxt, caffemodel))


@pytest.mark.skipif(not opencv_has_caffe(), reason="this OpenCV has no Caffe importer (OpenCV 5)")
def test_opencv_dnn_loads_the_caffe_files(tmp_path):
    model = ToyReID().eval()
    prototxt, caffemodel = export_caffe(model, tmp_path, "toy", SIZE)
    assert_matches(model, OpenCVCaffeRunner(prototxt, caffemodel))


def test_prototxt_is_plain_caffe_text(tmp_path):
    prototxt, _ = export_caffe(ToyReID().eval(), tmp_path, "toy", SIZE)
    text = prototxt.read_text()
    for layer_type in (
        "Input",
        "Convolution",
        "BatchNorm",
        "Scale",
        "MVN",
        "Slice",
        "Concat",
        "Pooling",
        "Eltwise",
        "InnerProduct",
        "Power",
    ):
        assert f'type: "{layer_type}"' in text
    assert "blobs" not in text  # weights live in the caffemodel only


def test_bot_r50_ibn_matches(tmp_path):
    model = build_recipe("bot_R50-ibn")
    prototxt, caffemodel = export_caffe(model, tmp_path, "bot", SIZE)
    runner = (OpenCVCaffeRunner if opencv_has_caffe() else CaffeReferenceRunner)(
        prototxt, caffemodel
    )
    assert_matches(model, runner)


@pytest.mark.slow
def test_bot_r50_matches(tmp_path):
    model = build_recipe("bot_R50")
    prototxt, caffemodel = export_caffe(model, tmp_path, "bot", SIZE)
    assert_matches(model, CaffeReferenceRunner(prototxt, caffemodel))


def test_unsupported_layer_names_the_module_and_type(tmp_path):
    class WithGelu(ToyReID):
        def __init__(self):
            super().__init__()
            self.act = nn.GELU()

        def forward(self, images):
            return self.act(super().forward(images))

    with pytest.raises(UnsupportedLayerError, match=r"gelu.*'act' \(GELU\)"):
        export_caffe(WithGelu().eval(), tmp_path, "gelu", SIZE)
    assert list(tmp_path.iterdir()) == []


def test_unsupported_module_inside_a_block_is_reported(tmp_path):
    model = ToyReID().eval()
    model.conv2 = nn.Conv2d(16, 32, 3, padding=1, padding_mode="reflect", bias=False)
    with pytest.raises(UnsupportedLayerError, match=r"'conv2' \(Conv2d\)"):
        export_caffe(model, tmp_path, "bad", SIZE)


def test_cuda_free_export_keeps_weights_exact(tmp_path):
    model = ToyReID().eval()
    _, caffemodel = export_caffe(model, tmp_path, "toy", SIZE)
    runner = CaffeReferenceRunner(tmp_path / "toy.prototxt", caffemodel)
    assert torch.equal(runner.blobs["conv1"][0], model.conv1.weight.detach())
