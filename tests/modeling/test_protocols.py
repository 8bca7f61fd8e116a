"""The declared seams hold for the core's own parts: a backbone's feat_dim is the channel count
it outputs, the ResNet gives the stage features distillation reads, heads declare their widths,
and the test loader reads every registered Dataset through test_items()."""

from __future__ import annotations

import torch

from fastreid.config import get_cfg
from fastreid.data.datasets import Dataset
from fastreid.data.datasets.bases import ProvidesTestItems
from fastreid.modeling import build_model
from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.protocols import (
    STAGE_FEATURE_MEMBERS,
    Backbone,
    Head,
    StageFeatureBackbone,
    accepts_camids,
    missing_members,
)


def _cfg(name: str, depth: str, feat_dim: int):
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.BACKBONE.DEPTH = depth
    cfg.MODEL.BACKBONE.FEAT_DIM = feat_dim
    cfg.MODEL.BACKBONE.PRETRAIN = False
    return cfg


def test_backbones_output_the_channels_they_declare():
    for name, depth, dim in [
        ("build_resnet_backbone", "18x", 512),
        ("build_small_resnet_backbone", "8x", 64),
        ("build_osnet_backbone", "x0_25", 128),
    ]:
        backbone = build_backbone(_cfg(name, depth, dim)).eval()
        assert isinstance(backbone, Backbone) and not accepts_camids(backbone)
        with torch.no_grad():
            out = backbone(torch.randn(2, 3, 64, 32))
        assert out.shape[1] == backbone.feat_dim == dim, name


def test_resnet_gives_the_stage_features_distillation_reads():
    backbone = build_backbone(_cfg("build_resnet_backbone", "18x", 512)).eval()
    assert isinstance(backbone, StageFeatureBackbone)
    assert missing_members(backbone, STAGE_FEATURE_MEMBERS) == []
    with torch.no_grad():
        stages = backbone.forward_stages(torch.randn(1, 3, 64, 32))
    assert [s.shape[1] for s in stages] == list(backbone.stage_channels)
    assert len(backbone.get_bn_before_relu()) == len(stages)
    small = build_backbone(_cfg("build_small_resnet_backbone", "8x", 64))
    assert not isinstance(small, StageFeatureBackbone)
    assert missing_members(small, STAGE_FEATURE_MEMBERS) == list(STAGE_FEATURE_MEMBERS)


def test_the_default_head_declares_its_widths():
    cfg = _cfg("build_resnet_backbone", "18x", 512)
    cfg.MODEL.HEADS.NUM_CLASSES = 7
    heads = build_model(cfg).heads
    assert isinstance(heads, Head)
    assert heads.in_channels == 512 and heads.num_classes == 7
    assert heads.metric_feat_dim == heads.feat_dim


def test_every_dataset_is_read_through_test_items():
    dataset = Dataset([], [("q.jpg", 1, 0)], [("g.jpg", 1, 1)], verbose=False)
    assert isinstance(dataset, ProvidesTestItems)
    assert dataset.test_items() == ([("q.jpg", 1, 0), ("g.jpg", 1, 1)], 1)

    class Lists:
        query, gallery = [], []

    assert not isinstance(Lists(), ProvidesTestItems)
