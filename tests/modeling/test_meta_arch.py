"""Meta-architectures: FastReID recipes build, train (named finite losses) and extract features."""

import logging
import os

import pytest
import torch
from torch import nn

from fastreid.config import get_cfg
from fastreid.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, build_model
from fastreid.modeling.heads import EmbeddingHead
from fastreid.modeling.meta_arch import Baseline

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "Market1501")


def recipe_cfg(name, height=64, width=32, num_classes=4):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, f"{name}.yml"))
    cfg.merge_from_list(
        [
            "MODEL.HEADS.NUM_CLASSES", num_classes,
            "MODEL.DEVICE", "cpu",
            "MODEL.BACKBONE.PRETRAIN", False,
            "INPUT.SIZE_TRAIN", [height, width],
            "INPUT.SIZE_TEST", [height, width],
        ]
    )  # fmt: skip
    return cfg


def batch(cfg, n=8):
    h, w = cfg.INPUT.SIZE_TRAIN
    return {
        "images": torch.rand(n, 3, h, w) * 255,
        "targets": torch.arange(n) // 2 % cfg.MODEL.HEADS.NUM_CLASSES,
        "camids": torch.arange(n) % 3,
    }


RECIPES = {
    "bagtricks_R50": ({"loss_cls", "loss_triplet"}, 2048, 64),
    "AGW_R50": ({"loss_cls", "loss_triplet"}, 2048, 64),
    "sbs_R50": ({"loss_cls", "loss_triplet"}, 2048, 64),
    "mgn_R50": (
        {f"loss_cls_{b}" for b in ("b1", "b2", "b21", "b22", "b3", "b31", "b32", "b33")}
        | {f"loss_triplet_{b}" for b in ("b1", "b2", "b3", "b22", "b33")},
        8 * 256,
        96,  # MGN cuts the map into 3 stripes: needs a taller input
    ),
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_trains_and_extracts_features(recipe):
    loss_names, feat_dim, height = RECIPES[recipe]
    cfg = recipe_cfg(recipe, height=height)
    model = build_model(cfg)
    data = batch(cfg)
    losses = model(data)
    assert set(losses) == loss_names
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        feats = model(data)
        assert feats.shape == (8, feat_dim)
        assert torch.allclose(model(data["images"]), feats, atol=1e-5)


# ---- a tiny backbone for the behaviour tests --------------------------------------------------


class TinyBackbone(nn.Module):
    def __init__(self, feat_dim=8, accepts_camids=False):
        super().__init__()
        self.conv = nn.Conv2d(3, feat_dim, 3, stride=2, padding=1)
        self.feat_dim = feat_dim
        self.accepts_camids = accepts_camids
        self.seen_camids = None

    def forward(self, x, camids=None):
        self.seen_camids = camids
        return torch.relu(self.conv(x))


@BACKBONE_REGISTRY.register()
def build_tiny_test_backbone(cfg):
    return TinyBackbone(cfg.MODEL.BACKBONE.FEAT_DIM)


def tiny_cfg(**overrides):
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.BACKBONE.NAME", "build_tiny_test_backbone",
            "MODEL.BACKBONE.FEAT_DIM", 8,
            "MODEL.HEADS.NUM_CLASSES", 4,
            "MODEL.HEADS.WITH_BNNECK", True,
            "MODEL.DEVICE", "cpu",
            "INPUT.SIZE_TRAIN", [16, 8],
        ]
    )  # fmt: skip
    for k, v in overrides.items():
        cfg.merge_from_list([k, v])
    return cfg


def tiny_baseline(accepts_camids=False, loss_names=("CrossEntropyLoss",)):
    return Baseline(
        backbone=TinyBackbone(8, accepts_camids),
        heads=EmbeddingHead(feat_dim=8, num_classes=4),
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[1.0, 1.0, 1.0],
        loss_kwargs={"loss_names": loss_names, "ce": {"eps": 0.0, "alpha": 0.2, "scale": 1.0}},
    )


def test_registry_names():
    assert {"Baseline", "MGN", "MoCo"} <= set(META_ARCH_REGISTRY.names())


def test_pixel_buffers_normalise_inside_and_are_not_saved():
    cfg = tiny_cfg()
    model = build_model(cfg)
    assert model.pixel_mean.shape == (1, 3, 1, 1)
    assert model.pixel_mean.flatten().tolist() == pytest.approx(cfg.MODEL.PIXEL_MEAN)
    assert "pixel_mean" not in model.state_dict()
    img = torch.full((1, 3, 4, 4), 100.0)
    out = model.preprocess_image(img)
    expected = (100.0 - torch.tensor(cfg.MODEL.PIXEL_MEAN)) / torch.tensor(cfg.MODEL.PIXEL_STD)
    assert torch.allclose(out[0, :, 0, 0], expected)


def test_device_property_and_cuda_fallback(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = tiny_cfg(**{"MODEL.DEVICE": "cuda"})
    with caplog.at_level(logging.WARNING):
        model = build_model(cfg)
    assert model.device == torch.device("cpu")
    assert "CUDA is not available" in caplog.text


def test_every_loss_by_name_and_scale():
    cfg = tiny_cfg(
        **{
            "MODEL.LOSSES.NAME": (
                "CrossEntropyLoss",
                "TripletLoss",
                "CircleLoss",
                "Cosface",
                "FocalLoss",
            ),
            "MODEL.LOSSES.CE.SCALE": 0.5,
        }
    )
    model = build_model(cfg)
    data = batch(cfg)
    losses = model(data)
    assert set(losses) == {"loss_cls", "loss_triplet", "loss_circle", "loss_cosface", "loss_focal"}
    torch.manual_seed(0)
    cfg.merge_from_list(["MODEL.LOSSES.CE.SCALE", 1.0])
    ref = build_model(cfg)
    ref.load_state_dict(model.state_dict())
    assert losses["loss_cls"].item() == pytest.approx(0.5 * ref(data)["loss_cls"].item(), rel=1e-5)


def test_unknown_loss_name_is_an_error():
    with pytest.raises(KeyError, match="MODEL.LOSSES.NAME"):
        build_model(tiny_cfg(**{"MODEL.LOSSES.NAME": ("TripletLos",)}))


def test_camids_reach_backbones_that_accept_them():
    model = tiny_baseline(accepts_camids=True)
    data = {
        "images": torch.rand(4, 3, 8, 8),
        "targets": torch.tensor([0, 0, 1, 1]),
        "camids": torch.tensor([1, 2, 3, 4]),
    }
    model(data)
    assert model.backbone.seen_camids.tolist() == [1, 2, 3, 4]
    other = tiny_baseline(accepts_camids=False)
    other(data)
    assert other.backbone.seen_camids is None


def test_head_input_dim_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="MODEL.BACKBONE.FEAT_DIM 8"):
        Baseline(
            backbone=TinyBackbone(8),
            heads=EmbeddingHead(feat_dim=16, num_classes=4),
            pixel_mean=[0.0] * 3,
            pixel_std=[1.0] * 3,
        )


def test_training_without_targets_is_a_clear_error():
    model = tiny_baseline()
    with pytest.raises(ValueError, match="targets"):
        model(torch.rand(2, 3, 8, 8))


def test_zero_classes_error_names_the_key():
    model = build_model(tiny_cfg(**{"MODEL.HEADS.NUM_CLASSES": 0}))
    with pytest.raises(
        RuntimeError, match="set MODEL.HEADS.NUM_CLASSES or let the trainer fill it"
    ):
        model(batch(tiny_cfg()))


def test_losses_method_is_the_extension_point():
    class WithExtra(Baseline):
        def losses(self, outputs, gt_labels):
            loss_dict = super().losses(outputs, gt_labels)
            loss_dict["loss_extra"] = outputs["features"].pow(2).mean()
            return loss_dict

    base = tiny_baseline()
    model = WithExtra(
        backbone=base.backbone, heads=base.heads, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3
    )
    out = model({"images": torch.rand(4, 3, 8, 8), "targets": torch.tensor([0, 0, 1, 1])})
    assert set(out) == {"loss_cls", "loss_extra"}


def test_moco_queue_fills_with_key_features():
    cfg = tiny_cfg(
        **{
            "MODEL.META_ARCHITECTURE": "MoCo",
            "MODEL.QUEUE_SIZE": 12,
            "MODEL.LOSSES.NAME": ("CrossEntropyLoss", "TripletLoss"),
        }
    )
    model = build_model(cfg)
    assert model.memory.queue.shape == (8, 12)
    data = batch(cfg)
    losses = model(data)
    assert set(losses) == {"loss_cls", "loss_triplet", "loss_mb"}
    assert torch.isfinite(losses["loss_mb"])
    assert model.memory.queue_ptr.item() == 8
    assert model.memory.queue_label[:8].tolist() == data["targets"].tolist()
    assert (model.memory.queue_label[8:] == -1).all()
    model(data)  # wraps around: 16 % 12
    assert model.memory.queue_ptr.item() == 4
    # the key encoder is not trained by the optimizer
    assert not any(p.requires_grad for p in model.key_backbone.parameters())
    model.eval()
    assert model(data).shape == (8, 8)


def test_moco_key_encoder_follows_the_momentum_update_formula():
    # After each training forward: key = m * key + (1 - m) * query, for every parameter.
    m = 0.9
    cfg = tiny_cfg(
        **{
            "MODEL.META_ARCHITECTURE": "MoCo",
            "MODEL.QUEUE_SIZE": 16,
            "MODEL.LOSSES.MEMORY.MOMENTUM": m,
        }
    )
    model = build_model(cfg)
    generator = torch.Generator().manual_seed(0)
    query_params = list(model.backbone.parameters()) + list(model.heads.parameters())
    key_params = list(model.key_backbone.parameters()) + list(model.key_heads.parameters())
    assert len(query_params) == len(key_params) > 0
    with torch.no_grad():
        for p in key_params + query_params:
            p.copy_(torch.randn(p.shape, generator=generator))
    data = batch(cfg)
    for _ in range(2):
        keys_before = [k.detach().clone() for k in key_params]
        queries = [q.detach().clone() for q in query_params]
        model(data)
        for key, before, query in zip(key_params, keys_before, queries):
            torch.testing.assert_close(key, m * before + (1 - m) * query)
        with torch.no_grad():  # an optimizer step in between
            for q in query_params:
                q.add_(0.5)


def test_mgn_needs_a_resnet():
    with pytest.raises(TypeError, match="build_resnet_backbone"):
        build_model(tiny_cfg(**{"MODEL.META_ARCHITECTURE": "MGN"}))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_eval_tensor_path_traces_with_any_batch_size():
    model = build_model(tiny_cfg(**{"MODEL.HEADS.POOL_LAYER": "GeneralizedMeanPoolingP"})).eval()
    traced = torch.jit.trace(model, torch.rand(2, 3, 16, 8) * 255)
    x = torch.rand(5, 3, 16, 8) * 255
    assert torch.allclose(traced(x), model(x), atol=1e-5)
