"""FastReID checkpoint compatibility: our parameter names/shapes are FastReID's.

The expected names are generated here from FastReID's published layout (ResNet-50 with
``conv1``/``bn1``/``layer1..4``, IBN-a as ``bnX.IN``/``bnX.BN``, non-local blocks ``NL_2``/``NL_3``
with FastReID's one-channel inner width, the head's ``bottleneck.0`` and ``weight``; MGN's
``backbone.N`` trunk, ``b1..b3`` branches and ``*_head`` heads), not from our modules.
"""

import os
from collections import OrderedDict

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.modeling.compat import map_fastreid_state_dict

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "Market1501")
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix, c):
    return {f"{prefix}.{k}": (() if k == "num_batches_tracked" else (c,)) for k in BN}


def _ibn(prefix, c):
    half = c // 2
    out = {f"{prefix}.IN.weight": (half,), f"{prefix}.IN.bias": (half,)}
    out.update(_bn(f"{prefix}.BN", c - half))
    return out


def _bottleneck(prefix, inplanes, planes, downsample, ibn):
    out = {f"{prefix}.conv1.weight": (planes, inplanes, 1, 1)}
    out.update(_ibn(f"{prefix}.bn1", planes) if ibn else _bn(f"{prefix}.bn1", planes))
    out[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
    out.update(_bn(f"{prefix}.bn2", planes))
    out[f"{prefix}.conv3.weight"] = (planes * 4, planes, 1, 1)
    out.update(_bn(f"{prefix}.bn3", planes * 4))
    if downsample:
        out[f"{prefix}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
        out.update(_bn(f"{prefix}.downsample.1", planes * 4))
    return out


R50_LAYERS = [(64, 3), (128, 4), (256, 6), (512, 3)]


def _r50_blocks(ibn):
    """(layer index 1..4, block index, prefix-free dict) for every Bottleneck of ResNet-50."""
    inplanes = 64
    blocks = []
    for li, (planes, n) in enumerate(R50_LAYERS, start=1):
        for bi in range(n):
            use_ibn = ibn and li < 4  # FastReID: IBN-a in layer1..3
            blocks.append((li, bi, inplanes, planes, bi == 0, use_ibn))
            inplanes = planes * 4
    return blocks


def _non_local(prefix, c):
    inter = 1  # FastReID's Non_local computes reduc_ratio // reduc_ratio
    out = {}
    for name in ("g", "theta", "phi"):
        out[f"{prefix}.{name}.weight"] = (inter, c, 1, 1)
        out[f"{prefix}.{name}.bias"] = (inter,)
    out[f"{prefix}.W.0.weight"] = (c, inter, 1, 1)
    out[f"{prefix}.W.0.bias"] = (c,)
    out.update(_bn(f"{prefix}.W.1", c))
    return out


def fastreid_resnet50_keys(prefix="backbone", ibn=False, nl=False):
    out = {f"{prefix}.conv1.weight": (64, 3, 7, 7)}
    out.update(_bn(f"{prefix}.bn1", 64))
    for li, bi, inplanes, planes, down, use_ibn in _r50_blocks(ibn):
        out.update(_bottleneck(f"{prefix}.layer{li}.{bi}", inplanes, planes, down, use_ibn))
    if nl:  # FastReID R50: 2 blocks in layer2, 3 in layer3
        for i in range(2):
            out.update(_non_local(f"{prefix}.NL_2.{i}", 512))
        for i in range(3):
            out.update(_non_local(f"{prefix}.NL_3.{i}", 1024))
    return out


def embedding_head_keys(prefix, num_classes, feat_dim, gem_p=False, embedding_dim=0):
    out = {f"{prefix}.weight": (num_classes, embedding_dim or feat_dim)}
    if gem_p:
        out[f"{prefix}.pool_layer.p"] = (1,)
    idx = 0
    if embedding_dim:
        out[f"{prefix}.bottleneck.0.weight"] = (embedding_dim, feat_dim, 1, 1)
        idx = 1
    out.update(_bn(f"{prefix}.bottleneck.{idx}", embedding_dim or feat_dim))
    return out


def fastreid_mgn_keys(num_classes):
    out = {"backbone.0.weight": (64, 3, 7, 7)}
    out.update(_bn("backbone.1", 64))
    blocks = _r50_blocks(ibn=False)
    for li, bi, inplanes, planes, down, _ in blocks:
        if li in (1, 2):
            out.update(_bottleneck(f"backbone.{li + 3}.{bi}", inplanes, planes, down, False))
        elif li == 3 and bi == 0:
            out.update(_bottleneck("backbone.6", inplanes, planes, down, False))
    for branch in ("b1", "b2", "b3"):
        for li, bi, inplanes, planes, down, _ in blocks:
            if li == 3 and bi > 0:
                out.update(_bottleneck(f"{branch}.0.{bi - 1}", inplanes, planes, down, False))
            elif li == 4:
                out.update(_bottleneck(f"{branch}.1.{bi}", inplanes, planes, down, False))
    for head in ("b1", "b2", "b21", "b22", "b3", "b31", "b32", "b33"):
        out.update(embedding_head_keys(f"{head}_head", num_classes, 2048, True, 256))
    return out


def build(recipe, num_classes=751):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, f"{recipe}.yml"))
    cfg.merge_from_list(
        [
            "MODEL.HEADS.NUM_CLASSES",
            num_classes,
            "MODEL.DEVICE",
            "cpu",
            "MODEL.BACKBONE.PRETRAIN",
            False,
        ]
    )
    return build_model(cfg)


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


EXPECTED = {
    "bagtricks_R50": lambda: {
        **fastreid_resnet50_keys(),
        **embedding_head_keys("heads", 751, 2048),
    },
    "sbs_R50-ibn": lambda: {
        **fastreid_resnet50_keys(ibn=True, nl=True),
        **embedding_head_keys("heads", 751, 2048, gem_p=True),
    },
    "mgn_R50": lambda: fastreid_mgn_keys(751),
}


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_parameter_names_and_shapes_are_fastreids(recipe):
    got = shapes(build(recipe))
    expected = EXPECTED[recipe]()
    assert sorted(set(expected) - set(got)) == [], "FastReID keys we lack"
    assert sorted(set(got) - set(expected)) == [], "keys FastReID checkpoints do not have"
    assert {k: v for k, v in got.items() if v != expected[k]} == {}


def test_spot_checks_bot_r50():
    got = shapes(build("bagtricks_R50"))
    assert got["backbone.conv1.weight"] == (64, 3, 7, 7)
    assert got["heads.bottleneck.0.weight"] == (2048,)
    assert got["heads.weight"] == (751, 2048)


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_fastreid_named_state_dict_loads_strictly(recipe):
    model = build(recipe)
    torch.manual_seed(1)
    fake = OrderedDict(
        (k, torch.randint(0, 5, s) if k.endswith("num_batches_tracked") else torch.randn(s))
        for k, s in EXPECTED[recipe]().items()
    )
    result = model.load_state_dict(map_fastreid_state_dict({"model": fake}), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in model.state_dict().items():
        assert torch.equal(v, fake[k]), k


def test_old_key_names_are_mapped():
    model = build("bagtricks_R50", num_classes=10)
    old = OrderedDict()
    for k, v in model.state_dict().items():
        k = k.replace("heads.bottleneck.0.", "heads.bnneck.").replace(
            "heads.weight", "heads.classifier.weight"
        )
        old["module." + k] = v.clone()
    old["module.pixel_mean"] = torch.zeros(1, 3, 1, 1)
    mapped = map_fastreid_state_dict(old)
    assert "heads.weight" in mapped and "heads.bottleneck.0.running_var" in mapped
    model.load_state_dict(mapped, strict=True)


def test_old_bnneck_after_reduction_maps_to_index_1():
    sd = {
        "b1_head.bottleneck.0.weight": torch.zeros(4, 8, 1, 1),
        "b1_head.bnneck.weight": torch.ones(4),
        "b1_head.classifier.weight": torch.zeros(3, 4),
    }
    assert sorted(map_fastreid_state_dict(sd)) == [
        "b1_head.bottleneck.0.weight",
        "b1_head.bottleneck.1.weight",
        "b1_head.weight",
    ]


def test_bnneck_beside_a_named_neck_is_another_layer():
    # FastAttr: the BNNeck is heads.bottleneck.0, heads.bnneck the BatchNorm on the logits.
    sd = {
        "heads.bottleneck.0.weight": torch.ones(8),
        "heads.bottleneck.0.running_mean": torch.zeros(8),
        "heads.bnneck.weight": torch.full((3,), 2.0),
        "heads.bnneck.running_mean": torch.ones(3),
        "heads.weight": torch.zeros(3, 8),
    }
    mapped = map_fastreid_state_dict(sd)
    assert list(mapped) == list(sd)
    assert torch.equal(mapped["heads.bottleneck.0.weight"], torch.ones(8))


def test_current_names_pass_through_unchanged():
    sd = {"backbone.layer1.0.bn1.weight": torch.ones(1), "heads.weight": torch.ones(1)}
    assert list(map_fastreid_state_dict(sd)) == list(sd)
