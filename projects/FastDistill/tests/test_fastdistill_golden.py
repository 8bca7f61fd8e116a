"""build_resnet_backbone_distill against FastReID's own output (the shared golden file).

The weights follow from the key names (the golden README's rule); they are saved under
FastReID's names and loaded through MODEL.WEIGHTS, as a user's FastReID checkpoint would be.
"""

import json
import os

import torch

import projects.FastDistill.fastdistill  # noqa: F401 - registers the backbone
from fastreid.config import CfgNode, get_cfg
from fastreid.modeling import build_model
from fastreid.utils.checkpoint import Checkpointer
from tests.modeling.fastreid_parity import golden_state_dict

HERE = os.path.dirname(__file__)
GOLDEN = os.path.join(HERE, "data", "distill_sbs_r34.json")
CONFIGS = os.path.join(HERE, "..", "configs")


def test_distill_resnet34_gives_fastreids_features(tmp_path):
    with open(GOLDEN) as f:
        golden = json.load(f)
    weights = tmp_path / "fastreid_sbs_r34.pth"
    torch.save({"model": golden_state_dict(golden)}, weights)

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, "sbs_r34.yml"))
    cfg.merge_from_list(golden["opts"] + ["MODEL.WEIGHTS", str(weights)])
    model = build_model(cfg)
    incompatible = Checkpointer(model).load_model_state(
        torch.load(weights, weights_only=True)["model"]
    )
    assert not incompatible, incompatible.table()
    model.eval()

    h, w = golden.get("input_hw", cfg.INPUT.SIZE_TEST)
    images = torch.rand((2, 3, h, w), generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        ours = model(images)
    expected = torch.tensor(golden["features"])
    assert ours.shape == expected.shape
    cos = torch.nn.functional.cosine_similarity(ours, expected, dim=1)
    assert cos.min().item() >= 0.9999
    assert (ours - expected).abs().max().item() / expected.abs().max().item() <= 1e-3


def test_golden_config_yaml_loads_and_builds_a_distill_backbone(tmp_path):
    with open(GOLDEN) as f:
        golden = json.load(f)
    path = tmp_path / "config.yaml"
    path.write_text(golden["config_yaml"])
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    assert isinstance(cfg, CfgNode)
    model = build_model(cfg)
    stages, out = model.backbone.extract_feature(torch.rand(1, 3, 64, 32) * 255)
    assert [s.shape[1] for s in stages] == [64, 128, 256, 512]
    # Stage outputs are pre-ReLU: they have negative values; the output is their ReLU.
    assert all((s < 0).any() for s in stages)
    torch.testing.assert_close(out, torch.relu(stages[-1]))
