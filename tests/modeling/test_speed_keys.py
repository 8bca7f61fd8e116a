"""Training speed keys: uint8 inputs, MODEL.CHANNELS_LAST and MODEL.COMPILE change speed only."""

import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.modeling.meta_arch.build import compile_backbone

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def demo_cfg(*opts):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, "Synthetic", "bagtricks_R18.yml"))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", 4, *opts])
    return cfg


def images_uint8(n=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 64, 32), generator=generator, dtype=torch.uint8)


def train_batch():
    return {"images": images_uint8(8), "targets": torch.arange(8) // 2, "camids": torch.zeros(8)}


def test_uint8_images_give_the_same_features_as_float():
    torch.manual_seed(0)
    model = build_model(demo_cfg()).eval()
    images = images_uint8()
    with torch.no_grad():
        assert torch.equal(model(images), model(images.float()))


def test_channels_last_keeps_weights_and_features():
    torch.manual_seed(0)
    plain = build_model(demo_cfg()).eval()
    torch.manual_seed(0)
    nhwc = build_model(demo_cfg("MODEL.CHANNELS_LAST", True)).eval()
    conv = nhwc.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert nhwc.preprocess_image(images_uint8()).is_contiguous(memory_format=torch.channels_last)
    assert plain.state_dict().keys() == nhwc.state_dict().keys()
    with torch.no_grad():
        torch.testing.assert_close(
            nhwc(images_uint8()), plain(images_uint8()), rtol=1e-4, atol=1e-4
        )
    # A training step in channels_last gives the same losses.
    plain.train(), nhwc.train()
    losses_plain, losses_nhwc = plain(train_batch()), nhwc(train_batch())
    for name in losses_plain:
        torch.testing.assert_close(losses_nhwc[name], losses_plain[name], rtol=1e-4, atol=1e-4)


def test_compiled_backbone_keeps_checkpoint_keys_and_outputs():
    torch.manual_seed(0)
    model = build_model(demo_cfg()).eval()
    keys = list(model.state_dict())
    with torch.no_grad():
        before = model(images_uint8())
    # The eager backend runs the compile machinery (graph capture) without a C++ build.
    compile_backbone(model, backend="eager")
    assert list(model.state_dict()) == keys
    assert model.backbone._compiled_call_impl is not None
    with torch.no_grad():
        torch.testing.assert_close(model(images_uint8()), before)
    model.train()
    assert torch.isfinite(sum(model(train_batch()).values()))


def test_compile_needs_a_backbone():
    class NoBackbone(torch.nn.Module):
        device = torch.device("cpu")

    with pytest.raises(ValueError, match="MODEL.COMPILE"):
        compile_backbone(NoBackbone())
