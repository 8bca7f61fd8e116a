"""iResNet / FaceHead / FaceBaseline: FastReID's features from FastReID's weights, configs, SE."""

from __future__ import annotations

import json
import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.utils.checkpoint import Checkpointer
from projects.FastFace.fastface import add_face_config
from projects.FastFace.fastface.iresnet import IResNet
from tests.modeling.fastreid_parity import golden_state_dict

HERE = os.path.dirname(__file__)
CONFIGS = os.path.join(HERE, "..", "configs")
GOLDEN = os.path.join(HERE, "data", "face_r50_ir.json")


def face_cfg(name: str, *opts: str):
    cfg = add_face_config(get_cfg())
    cfg.merge_from_file(os.path.join(CONFIGS, name))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    return cfg


def test_r50_ir_matches_fastreid_features(tmp_path):
    golden = json.load(open(GOLDEN))
    cfg = face_cfg("r50_ir.yml", *golden["opts"])
    model = build_model(cfg)
    ours = set(model.state_dict())
    assert ours == set(golden["keys"]), ours ^ set(golden["keys"])
    state = golden_state_dict(golden)
    path = tmp_path / "fastreid_face.pth"
    torch.save({"model": state}, path)
    Checkpointer(model).load(str(path))
    model.eval()
    h, w = golden["input_hw"]
    images = torch.rand((2, 3, h, w), generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        feats = model(images)
    want = torch.tensor(golden["features"])
    cos = torch.nn.functional.cosine_similarity(feats, want).min().item()
    rel = ((feats - want).abs().max() / want.abs().max()).item()
    assert cos >= 0.9999 and rel <= 1e-3, (cos, rel)


def test_fastreid_config_yaml_loads_unchanged(tmp_path):
    golden = json.load(open(GOLDEN))
    path = tmp_path / "config.yaml"
    path.write_text(golden["config_yaml"])
    cfg = add_face_config(get_cfg())
    cfg.merge_from_file(str(path))
    assert cfg.MODEL.HEADS.PFC.SAMPLE_RATE == 0.1 and cfg.MODEL.BACKBONE.DEPTH == "50x"


def test_r101_ir_alias_builds_a_real_se_iresnet():
    cfg = face_cfg("r101_ir.yml", "MODEL.HEADS.NUM_CLASSES", "10")
    assert cfg.MODEL.BACKBONE.NAME == "build_resnetIR_backbone"
    from fastreid.modeling.backbones.build import BACKBONE_REGISTRY

    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg)
    blocks = [m for m in backbone.modules() if type(m).__name__ == "IBasicBlock"]
    assert len(blocks) == 3 + 13 + 30 + 3
    assert all(b.se is not None for b in blocks)


def test_se_changes_the_output_and_depths_have_their_blocks():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 112, 112)
    plain = IResNet((1, 1, 1, 1), width=8).eval()
    se = IResNet((1, 1, 1, 1), width=8, with_se=True).eval()
    se.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        a, b = plain(x), se(x)
    assert a.shape == b.shape == (2, 64, 7, 7)
    assert not torch.allclose(a, b)  # the SE gates really rescale the residual branch


def test_feat_dim_mismatch_names_the_fix():
    cfg = face_cfg("r50_ir.yml", "MODEL.BACKBONE.DEPTH", "18x-w8", "MODEL.HEADS.NUM_CLASSES", "5")
    with pytest.raises(ValueError, match="set MODEL.BACKBONE.FEAT_DIM 3136"):
        build_model(cfg)


def test_unknown_depth_names_the_choices():
    cfg = face_cfg("r50_ir.yml", "MODEL.BACKBONE.DEPTH", "77x")
    with pytest.raises(KeyError, match="18x, 34x, 50x, 100x, 200x"):
        build_model(cfg)
