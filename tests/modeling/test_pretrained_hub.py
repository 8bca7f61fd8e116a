"""ImageNet weights for PRETRAIN True without a path: hub cache, hash-checked download, one-line
errors. Downloads go to an HTTP server on 127.0.0.1 started by the test; nothing else is
reached."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.backbones import pretrained as pretrained_module
from fastreid.modeling.backbones.pretrained import (
    IMAGENET_WEIGHTS,
    PretrainUnavailableError,
    hub_checkpoint_dirs,
    resolve_imagenet_weights,
)
from fastreid.modeling.backbones.resnet import imagenet_weights_key
from fastreid.utils.errors import BadInputError


def r18_cfg(with_ibn=False, download=True):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.DEPTH = "18x"
    cfg.MODEL.BACKBONE.FEAT_DIM = 512
    cfg.MODEL.BACKBONE.WITH_IBN = with_ibn
    cfg.MODEL.BACKBONE.PRETRAIN = True
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = ""
    cfg.MODEL.BACKBONE.PRETRAIN_DOWNLOAD = download
    return cfg


def tiny_weights() -> bytes:
    """A partial torchvision-style ResNet-18 state dict (stem + classifier), serialised."""
    generator = torch.Generator().manual_seed(3)
    state = {
        "conv1.weight": torch.randn(64, 3, 7, 7, generator=generator),
        "bn1.weight": torch.rand(64, generator=generator) + 0.5,
        "bn1.running_var": torch.rand(64, generator=generator) + 0.5,
        "fc.weight": torch.randn(1000, 4, generator=generator),  # torchvision's classifier
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def hub_name(payload: bytes, stem: str = "resnet18") -> str:
    """torch.hub's convention: the first 8 hex digits of the sha256 in the file name."""
    return f"{stem}-{hashlib.sha256(payload).hexdigest()[:8]}.pth"


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv(pretrained_module.OFFLINE_ENV, raising=False)
    return home


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 serving ``files`` (path -> bytes), 404 for anything else.

    It runs in a daemon thread, answers within a short socket timeout and is shut down when
    the test ends."""
    files: dict = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 5

        def do_GET(self):  # noqa: N802 - the http.server API
            body = files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/models/"
    try:
        yield base, files
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def serve_as_resnet18(monkeypatch, server, name, body=None):
    base, files = server
    if body is not None:
        files[f"/models/{name}"] = body
    monkeypatch.setitem(IMAGENET_WEIGHTS, "resnet18", [(name, base)])


def test_the_keys_name_real_files_with_a_hash_prefix_in_each_name():
    for key, entries in IMAGENET_WEIGHTS.items():
        for name, base in entries:
            assert name.startswith(key + "-") and name.endswith(".pth"), name
            assert pretrained_module._HASH_IN_NAME.search(name), name
            assert base.startswith("https://"), base
    assert imagenet_weights_key("50x", False) == "resnet50"
    assert imagenet_weights_key("50x", True) == "resnet50_ibn_a"
    assert imagenet_weights_key("101x", False, groups=32, width=8) == "resnext101_32x8d"
    # The files FastReID's and torchvision's users already have in their cache.
    assert ("resnet50-19c8e357.pth", "https://download.pytorch.org/models/") in IMAGENET_WEIGHTS[
        "resnet50"
    ]
    assert IMAGENET_WEIGHTS["resnet50"][0][0] == "resnet50-0676ba61.pth"
    assert IMAGENET_WEIGHTS["resnet50_ibn_a"][0][0] == "resnet50_ibn_a-d9d0bb7b.pth"


def test_good_download_lands_in_the_hub_cache_and_loads(torch_home, server, monkeypatch):
    payload = tiny_weights()
    name = hub_name(payload)
    serve_as_resnet18(monkeypatch, server, name, payload)
    model = build_backbone(r18_cfg())
    cached = torch_home / "hub" / "checkpoints" / name
    assert cached.read_bytes() == payload
    assert sorted(p.name for p in cached.parent.iterdir()) == [name]  # no partial file left
    expected = torch.load(io.BytesIO(payload), weights_only=True)
    torch.testing.assert_close(model.conv1.weight, expected["conv1.weight"])
    torch.testing.assert_close(model.bn1.running_var, expected["bn1.running_var"])
    # A second build is a cache hit: the server has nothing any more.
    server[1].clear()
    again = build_backbone(r18_cfg())
    torch.testing.assert_close(again.conv1.weight, expected["conv1.weight"])


def test_corrupt_download_is_refused_and_nothing_is_cached(torch_home, server, monkeypatch):
    payload = tiny_weights()
    name = hub_name(payload)
    corrupt = bytearray(payload)
    corrupt[len(corrupt) // 2] ^= 0xFF
    serve_as_resnet18(monkeypatch, server, name, bytes(corrupt))
    with pytest.raises(PretrainUnavailableError) as info:
        build_backbone(r18_cfg())
    message = str(info.value)
    assert "sha256 does not match" in message and name in message
    checkpoints = torch_home / "hub" / "checkpoints"
    assert list(checkpoints.iterdir()) == []


def test_missing_file_is_one_line_naming_the_file_the_folder_and_the_ways_out(
    torch_home, server, monkeypatch
):
    name = "resnet18-0123abcd.pth"
    serve_as_resnet18(monkeypatch, server, name)  # not served: 404
    with pytest.raises(PretrainUnavailableError) as info:
        build_backbone(r18_cfg())
    message = str(info.value)
    assert isinstance(info.value, BadInputError)
    assert "\n" not in message
    assert "HTTP 404" in message and name in message
    assert str(torch_home / "hub" / "checkpoints") in message
    assert "MODEL.BACKBONE.PRETRAIN_PATH" in message and "MODEL.BACKBONE.PRETRAIN False" in message
    assert list((torch_home / "hub" / "checkpoints").iterdir()) == []


@pytest.mark.parametrize("folder", ["hub/checkpoints", "checkpoints"])
def test_cache_hit_under_fastreids_file_name_needs_no_network(torch_home, monkeypatch, folder):
    # FastReID downloaded into $TORCH_HOME/checkpoints, torchvision into $TORCH_HOME/hub/...
    monkeypatch.setenv(pretrained_module.OFFLINE_ENV, "1")
    payload = tiny_weights()
    directory = torch_home / folder
    directory.mkdir(parents=True)
    (directory / "resnet18-5c106cde.pth").write_bytes(payload)
    model = build_backbone(r18_cfg())
    expected = torch.load(io.BytesIO(payload), weights_only=True)
    torch.testing.assert_close(model.conv1.weight, expected["conv1.weight"])


def test_ibn_a_resolves_ibn_nets_file_and_splits_nothing_it_should_not(torch_home, monkeypatch):
    monkeypatch.setenv(pretrained_module.OFFLINE_ENV, "1")
    directory = torch_home / "hub" / "checkpoints"
    directory.mkdir(parents=True)
    generator = torch.Generator().manual_seed(1)
    state = {
        "layer1.0.bn1.IN.weight": torch.rand(32, generator=generator),
        "layer1.0.bn1.BN.weight": torch.rand(32, generator=generator),
    }
    torch.save(state, directory / "resnet18_ibn_a-2f571257.pth")
    model = build_backbone(r18_cfg(with_ibn=True))
    torch.testing.assert_close(model.layer1[0].bn1.IN.weight, state["layer1.0.bn1.IN.weight"])
    torch.testing.assert_close(model.layer1[0].bn1.BN.weight, state["layer1.0.bn1.BN.weight"])


def test_offline_and_absent_stops_with_the_file_and_the_ways_out(torch_home, monkeypatch):
    monkeypatch.setenv(pretrained_module.OFFLINE_ENV, "1")
    with pytest.raises(PretrainUnavailableError) as info:
        build_backbone(r18_cfg())
    message = str(info.value)
    assert "\n" not in message
    for text in (
        "resnet18-f37072fd.pth",
        "resnet18-5c106cde.pth",
        str(torch_home / "hub" / "checkpoints"),
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "FASTREID_OFFLINE",
        "MODEL.BACKBONE.PRETRAIN_PATH",
        "MODEL.BACKBONE.PRETRAIN False",
    ):
        assert text in message, text
    assert not (torch_home / "hub" / "checkpoints").exists()


def test_pretrain_download_false_never_contacts_the_server(torch_home, server, monkeypatch):
    payload = tiny_weights()
    name = hub_name(payload)
    serve_as_resnet18(monkeypatch, server, name, payload)
    with pytest.raises(PretrainUnavailableError, match="downloads are off"):
        build_backbone(r18_cfg(download=False))
    assert not (torch_home / "hub" / "checkpoints" / name).exists()


def test_backbone_without_known_weights_never_trains_from_scratch_silently(torch_home):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_osnet_backbone"
    cfg.MODEL.BACKBONE.DEPTH = "x1_0"
    cfg.MODEL.BACKBONE.FEAT_DIM = 512
    with pytest.raises(PretrainUnavailableError, match=r"PRETRAIN_PATH .*PRETRAIN False"):
        build_backbone(cfg)
    with pytest.raises(PretrainUnavailableError, match="no ImageNet weights are known"):
        resolve_imagenet_weights("resnet50_nonexistent")


def test_hub_dirs_follow_torch_home(torch_home):
    assert hub_checkpoint_dirs() == [
        str(torch_home / "hub" / "checkpoints"),
        str(torch_home / "checkpoints"),
    ]
