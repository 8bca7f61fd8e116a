"""Backbones build from a config, return honest feature maps and keep FastReID's names."""

from __future__ import annotations

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling.backbones import BACKBONE_REGISTRY, build_backbone


def make_cfg(name: str, depth: str, feat_dim: int, **backbone_keys):
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [64, 32]
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.BACKBONE.DEPTH = depth
    cfg.MODEL.BACKBONE.FEAT_DIM = feat_dim
    cfg.MODEL.BACKBONE.PRETRAIN = False
    for key, value in backbone_keys.items():
        cfg.MODEL.BACKBONE[key] = value
    return cfg


def forward_backward(model: torch.nn.Module, **kwargs) -> torch.Tensor:
    model.train()
    x = torch.randn(2, 3, 64, 32, requires_grad=True)
    out = model(x, **kwargs)
    out.float().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    return out


# (builder, depth, feat_dim, extra keys): the smallest variant of every family runs a step.
SMALL_BACKBONES = [
    ("build_resnet_backbone", "18x", 512, {}),
    ("build_resnet_backbone", "18x", 512, {"WITH_IBN": True, "WITH_SE": True}),
    ("build_resnet_backbone", "34x", 512, {"WITH_NL": True}),
    ("build_resnext_backbone", "50x_8x4d", 2048, {}),
    ("build_resnest_backbone", "50x", 2048, {"WITH_IBN": True}),
    ("build_osnet_backbone", "x0_25", 128, {}),
    ("build_osnet_backbone", "x0_25", 128, {"WITH_IBN": True}),
    ("build_mobilenetv2_backbone", "0.5x", 1280, {}),
    ("build_mobilenetv3_backbone", "Small", 1024, {}),
    ("build_effnet_backbone", "b0", 1280, {}),
    ("build_regnet_backbone", "200y", 368, {}),
    ("build_shufflenetv2_backbone", "0.5x", 1024, {}),
    ("build_small_resnet_backbone", "8x", 64, {}),
    ("build_torchvision_mobilenetv2_backbone", "0.5x", 1280, {}),
    ("build_torchvision_mobilenetv3_backbone", "small", 576, {}),
    ("build_efficientnet_backbone", "b0", 1280, {}),
    ("build_efficientnet_backbone", "lite0", 1280, {}),
    ("build_torchvision_regnet_backbone", "400x", 400, {}),
    ("build_repvgg_backbone", "A0", 1280, {}),
    ("build_vit_backbone", "small", 768, {"NUM_CAMERAS": 3, "STRIDE_SIZE": (12, 12)}),
]


@pytest.mark.parametrize("name,depth,feat_dim,keys", SMALL_BACKBONES)
def test_backbone_forward_backward_returns_feat_dim_channels(name, depth, feat_dim, keys):
    model = build_backbone(make_cfg(name, depth, feat_dim, **keys))
    assert model.feat_dim == feat_dim
    kwargs = {"camids": torch.tensor([0, 1])} if getattr(model, "accepts_camids", False) else {}
    out = forward_backward(model, **kwargs)
    assert out.dim() == 4 and out.shape[:2] == (2, feat_dim)


def test_every_registered_backbone_is_covered_by_a_forward_test():
    covered = {name for name, *_ in SMALL_BACKBONES}
    # Other test modules register stand-in backbones into the same registry; only the
    # library's own builders must be covered here.
    library = {name for name, fn in BACKBONE_REGISTRY if fn.__module__.startswith("fastreid.")}
    assert covered == library


def test_wrong_feat_dim_names_the_key_and_the_right_value():
    with pytest.raises(ValueError, match=r"MODEL\.BACKBONE\.FEAT_DIM 512"):
        build_backbone(make_cfg("build_resnet_backbone", "18x", 2048))


def test_unknown_depth_lists_the_choices():
    with pytest.raises(KeyError, match="50x"):
        build_backbone(make_cfg("build_resnet_backbone", "51x", 2048))


@pytest.mark.parametrize("depth,params_millions", [("50x", 23.5), ("101x", 42.5), ("152x", 58.1)])
def test_large_resnets_build_on_meta_with_expected_size(depth, params_millions):
    with torch.device("meta"):
        model = build_backbone(make_cfg("build_resnet_backbone", depth, 2048))
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert count == pytest.approx(params_millions, abs=0.1)


def test_resnet_last_stride_one_keeps_a_16x8_map_at_256x128():
    model = build_backbone(make_cfg("build_resnet_backbone", "18x", 512, LAST_STRIDE=1)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 256, 128)).shape == (1, 512, 16, 8)
    model = build_backbone(make_cfg("build_resnet_backbone", "18x", 512, LAST_STRIDE=2)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 256, 128)).shape == (1, 512, 8, 4)


def _fastreid_r50_names(ibn: bool = False, nl: bool = False) -> set:
    """Parameter/buffer names of FastReID's ResNet-50 backbone, written out from its layout."""
    norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    names = {"conv1.weight"} | {f"bn1.{s}" for s in norm}
    for stage, blocks in enumerate([3, 4, 6, 3], start=1):
        for b in range(blocks):
            prefix = f"layer{stage}.{b}"
            for i in (1, 2, 3):
                names.add(f"{prefix}.conv{i}.weight")
            if ibn and stage < 4:
                names |= {f"{prefix}.bn1.IN.weight", f"{prefix}.bn1.IN.bias"}
                names |= {f"{prefix}.bn1.BN.{s}" for s in norm}
            else:
                names |= {f"{prefix}.bn1.{s}" for s in norm}
            names |= {f"{prefix}.bn2.{s}" for s in norm} | {f"{prefix}.bn3.{s}" for s in norm}
            if b == 0:
                names.add(f"{prefix}.downsample.0.weight")
                names |= {f"{prefix}.downsample.1.{s}" for s in norm}
    if nl:
        for stage, count in ((2, 2), (3, 3)):
            for j in range(count):
                prefix = f"NL_{stage}.{j}"
                for conv in ("g", "theta", "phi", "W.0"):
                    names |= {f"{prefix}.{conv}.weight", f"{prefix}.{conv}.bias"}
                names |= {f"{prefix}.W.1.{s}" for s in norm}
    return names


@pytest.mark.parametrize("ibn,nl", [(False, False), (True, False), (False, True)])
def test_resnet50_state_dict_names_match_fastreid(ibn, nl):
    with torch.device("meta"):
        model = build_backbone(
            make_cfg("build_resnet_backbone", "50x", 2048, WITH_IBN=ibn, WITH_NL=nl)
        )
    assert set(model.state_dict()) == _fastreid_r50_names(ibn=ibn, nl=nl)


def test_resnet_se_uses_fastreid_bias_free_linear_names():
    with torch.device("meta"):
        model = build_backbone(make_cfg("build_resnet_backbone", "50x", 2048, WITH_SE=True))
    state = model.state_dict()
    assert state["layer1.0.se.fc.0.weight"].shape == (256 // 16, 256)
    assert state["layer4.2.se.fc.2.weight"].shape == (2048, 2048 // 16)
    assert "layer1.0.se.fc.0.bias" not in state


def test_resnet_non_local_blocks_follow_the_last_blocks_of_stages_2_and_3():
    model = build_backbone(make_cfg("build_resnet_backbone", "50x", 2048, WITH_NL=True))
    assert [len(getattr(model, f"NL_{i}")) for i in range(1, 5)] == [0, 2, 3, 0]
    assert model.nl_positions == [[], [2, 3], [3, 4, 5], []]


def test_resnet_forward_stages_are_pre_relu_and_end_at_the_forward_output():
    model = build_backbone(make_cfg("build_resnet_backbone", "18x", 512)).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        stages = model.forward_stages(x)
        out = model(x)
    assert [s.shape[1] for s in stages] == model.stage_channels == [64, 128, 256, 512]
    assert all((s < 0).any() for s in stages)  # negative values: taken before the ReLU
    torch.testing.assert_close(stages[-1].relu(), out)
    assert len(model.get_bn_before_relu()) == 4


# Larger variants only build (on the meta device: no memory, no init cost) with their feat_dim.
LARGE_BACKBONES = [
    ("build_resnext_backbone", "101x", 2048),
    ("build_resnest_backbone", "101x", 2048),
    ("build_resnest_backbone", "269x", 2048),
    ("build_osnet_backbone", "x1_0", 512),
    ("build_osnet_backbone", "x0_75", 384),
    ("build_osnet_backbone", "x0_5", 256),
    ("build_mobilenetv2_backbone", "1.4x", 1792),
    ("build_mobilenetv3_backbone", "Large", 1280),
    ("build_effnet_backbone", "b3", 1536),
    ("build_effnet_backbone", "b5", 2048),
    ("build_shufflenetv2_backbone", "1.5x", 1024),
    ("build_shufflenetv2_backbone", "2.0x", 2048),
    ("build_regnet_backbone", "800y", 768),
    ("build_regnet_backbone", "3200y", 1512),
    ("build_regnet_backbone", "8000x", 1920),
    ("build_torchvision_mobilenetv3_backbone", "large", 960),
    ("build_efficientnet_backbone", "b3", 1536),
    ("build_efficientnet_backbone", "b7", 2560),
    ("build_torchvision_regnet_backbone", "800y", 784),
    ("build_torchvision_regnet_backbone", "3200y", 1512),
    ("build_repvgg_backbone", "B1g2", 2048),
    ("build_repvgg_backbone", "B3", 2560),
    ("build_vit_backbone", "base", 768),
]


@pytest.mark.parametrize("name,depth,feat_dim", LARGE_BACKBONES)
def test_large_variants_build_with_their_feat_dim(name, depth, feat_dim):
    # torchvision's RegNet computes its widths with tensor ops that need real data.
    device = "cpu" if name == "build_torchvision_regnet_backbone" else "meta"
    with torch.device(device):
        model = build_backbone(make_cfg(name, depth, feat_dim))
    assert model.feat_dim == feat_dim


@pytest.mark.parametrize(
    "name", ["build_torchvision_mobilenetv2_backbone", "build_efficientnet_backbone"]
)
def test_last_stride_one_doubles_the_map_of_single_path_networks(name):
    depth = {
        "build_torchvision_mobilenetv2_backbone": "0.5x",
        "build_efficientnet_backbone": "lite0",
    }[name]
    x = torch.zeros(1, 3, 64, 32)
    shapes = []
    for stride in (2, 1):
        model = build_backbone(make_cfg(name, depth, 1280, LAST_STRIDE=stride)).eval()
        with torch.no_grad():
            shapes.append(model(x).shape[-2:])
    assert shapes == [(2, 1), (4, 2)]


@pytest.mark.parametrize(
    "name,depth,feat_dim",
    [("build_torchvision_regnet_backbone", "400x", 400), ("build_regnet_backbone", "400x", 384)],
)
def test_regnet_last_stride_one_keeps_the_stride_16_map(name, depth, feat_dim):
    model = build_backbone(make_cfg(name, depth, feat_dim, LAST_STRIDE=1)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 32)).shape[-2:] == (4, 2)


@pytest.mark.parametrize(
    "name,depth,feat_dim",
    [
        ("build_mobilenetv2_backbone", "0.5x", 1280),
        ("build_mobilenetv3_backbone", "Small", 1024),
        ("build_shufflenetv2_backbone", "0.5x", 1024),
    ],
)
def test_fastreids_mobile_networks_keep_output_stride_32_as_fastreid(name, depth, feat_dim):
    model = build_backbone(make_cfg(name, depth, feat_dim, LAST_STRIDE=1)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 32)).shape[-2:] == (2, 1)


@pytest.mark.parametrize("depth", ["A0", "B1g4"])
def test_repvgg_fused_model_gives_the_same_outputs(depth):
    feat_dim = {"A0": 1280, "B1g4": 2048}[depth]
    model = build_backbone(make_cfg("build_repvgg_backbone", depth, feat_dim))
    # Non-trivial BN statistics, so the fusion of running mean/var is really exercised.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        before = model(x)
        model.switch_to_deploy()
        after = model(x)
    assert not any(n.endswith(("rbr_dense", "rbr_1x1")) for n, _ in model.named_modules())
    assert (before - after).abs().max().item() < 1e-4


def test_vit_camera_embedding_changes_features_and_is_weighted_by_sie_coe():
    cfg = make_cfg("build_vit_backbone", "small", 768, NUM_CAMERAS=4, DROP_PATH_RATIO=0.0)
    model = build_backbone(cfg).eval()
    assert model.accepts_camids is True
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        a = model(x, camids=torch.tensor([0, 0]))
        b = model(x, camids=torch.tensor([3, 3]))
        model.sie_coe = 0.0
        c = model(x, camids=torch.tensor([3, 3]))
        d = model(x)
    assert a.shape == (2, 768, 1, 1)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(c, d)


def test_vit_camera_id_out_of_range_names_the_key():
    model = build_backbone(make_cfg("build_vit_backbone", "small", 768, NUM_CAMERAS=2))
    with pytest.raises(ValueError, match="NUM_CAMERAS"):
        model(torch.randn(1, 3, 64, 32), camids=torch.tensor([5]))


def test_vit_overlapping_stride_gives_more_patches():
    plain = build_backbone(make_cfg("build_vit_backbone", "small", 768))
    overlap = build_backbone(make_cfg("build_vit_backbone", "small", 768, STRIDE_SIZE=(12, 12)))
    assert plain.grid == (4, 2) and overlap.grid == (5, 2)
    assert overlap.pos_embed.shape == (1, 1 + 10, 768)


def test_vit_accepts_another_input_size_by_resizing_positions():
    model = build_backbone(make_cfg("build_vit_backbone", "small", 768)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 48)).shape == (1, 768, 1, 1)
