"""FastReID compatibility, shown by numbers: FastReID checkpoints give FastReID's features.

Each golden in ``tests/fixtures/fastreid_parity`` is the eval output of FastReID's own code for
one recipe, on weights that follow from the key names alone. The test rebuilds that state dict
under FastReID's names, saves it as a FastReID checkpoint, loads it through ``MODEL.WEIGHTS``
like any user checkpoint and compares the features. The full ``config.yaml`` that FastReID
wrote for the recipe must load and describe the same model. Every shipped recipe builds and
runs.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.modeling.compat import map_fastreid_state_dict, num_classes_in_checkpoint
from fastreid.predictor import build_model_from_cfg

from .fastreid_parity import (
    MAX_REL_DIFF,
    MIN_COSINE,
    ROOT,
    compare,
    golden_cfg,
    golden_input,
    golden_names,
    golden_state_dict,
    load_golden,
)

GOLDENS = golden_names()
NOT_LOADED = "were not loaded"


def test_all_goldens_are_present():
    assert len(GOLDENS) == 13


@pytest.mark.parametrize("name", GOLDENS)
def test_fastreid_checkpoint_gives_fastreids_features(name, tmp_path, caplog):
    golden = load_golden(name)
    weights = tmp_path / "fastreid_model.pth"
    torch.save({"model": golden_state_dict(golden)}, weights)
    cfg = golden_cfg(golden, str(weights))
    with caplog.at_level(logging.WARNING):
        model = build_model_from_cfg(cfg)
    assert NOT_LOADED not in caplog.text, f"{name}: FastReID keys did not all load"
    with torch.no_grad():
        features = model({"images": golden_input(cfg)})
    cos, rel = compare(features, torch.tensor(golden["features"]))
    assert cos >= MIN_COSINE and rel <= MAX_REL_DIFF, f"{name}: cos {cos:.6f}, rel {rel:.2e}"


def _flat(node, prefix=""):
    out = {}
    for key, value in node.items():
        if hasattr(value, "items"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _meta_run(cfg, height: int, width: int) -> torch.Tensor:
    """Build ``cfg``'s model on the meta device (no memory, no init) and run it in eval mode."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = build_model(cfg).eval()
        with torch.no_grad():
            return model({"images": torch.zeros(2, 3, height, width)})


@pytest.mark.parametrize("name", GOLDENS)
def test_fastreids_dumped_config_yaml_loads_and_builds_the_same_model(name, tmp_path):
    golden = load_golden(name)
    dumped_file = tmp_path / "config.yaml"
    dumped_file.write_text(golden["config_yaml"])
    dumped = get_cfg()
    dumped.merge_from_file(str(dumped_file))
    # The dump describes the model and test input of the recipe + opts it came from.
    ours, theirs = _flat(golden_cfg(golden)), _flat(dumped)
    differing = {
        k: (ours[k], theirs[k])
        for k in ours
        if k.startswith(("MODEL.", "INPUT.")) and ours[k] != theirs[k]
    }
    differing.pop("MODEL.BACKBONE.PRETRAIN_PATH", None)  # a path on FastReID's machine
    assert differing == {}
    out = _meta_run(dumped, *dumped.INPUT.SIZE_TEST)
    assert tuple(out.shape) == (2, len(golden["features"][0]))


RECIPES = sorted(
    str(p.relative_to(ROOT)) for p in Path(ROOT, "configs").rglob("*.yml") if "Base-" not in p.name
)


def test_every_fastreid_core_recipe_is_shipped():
    names = {os.path.relpath(r, "configs") for r in RECIPES}
    for dataset in ("DukeMTMC", "MSMT17", "Market1501"):
        for kind in ("AGW", "bagtricks", "sbs"):
            for backbone in ("R50", "R50-ibn", "R101-ibn", "S50"):
                assert f"{dataset}/{kind}_{backbone}.yml" in names
        assert f"{dataset}/mgn_R50-ibn.yml" in names
    assert "Market1501/bagtricks_vit.yml" in names
    for vehicle in (
        "VeRi/sbs_R50-ibn.yml",
        "VehicleID/bagtricks_R50-ibn.yml",
        "VERIWild/bagtricks_R50-ibn.yml",
    ):
        assert vehicle in names


def _model_signature(cfg) -> str:
    """The config keys that decide which model gets built and what input it sees."""
    return repr(sorted(_flat(cfg.MODEL).items()) + [("SIZE_TEST", cfg.INPUT.SIZE_TEST)])


def test_every_shipped_recipe_loads_and_builds_a_model_that_runs():
    built = {}
    for recipe in RECIPES:
        cfg = get_cfg()
        cfg.merge_from_file(os.path.join(ROOT, recipe))
        cfg.MODEL.HEADS.NUM_CLASSES = 10
        signature = _model_signature(cfg)
        if signature not in built:  # the same model in another dataset's recipe is built once
            out = _meta_run(cfg, *cfg.INPUT.SIZE_TEST)
            assert out.dim() == 2 and out.shape[0] == 2, recipe
            built[signature] = recipe
    assert len(built) >= 15


def test_resnest_ignores_non_local_with_one_warning(caplog):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs/Market1501/sbs_S50.yml"))
    assert cfg.MODEL.BACKBONE.WITH_NL
    cfg.MODEL.HEADS.NUM_CLASSES = 10
    with caplog.at_level(logging.WARNING):
        _meta_run(cfg, 64, 32)
    assert caplog.text.count("ignores MODEL.BACKBONE.WITH_SE / WITH_NL") == 1


def test_mgn_class_count_comes_from_its_branch_heads(tmp_path, caplog):
    recipe = os.path.join(ROOT, "configs/Market1501/mgn_R50-ibn.yml")
    cfg = get_cfg()
    cfg.merge_from_file(recipe)
    small = ["MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", 512]
    cfg.merge_from_list(["MODEL.HEADS.NUM_CLASSES", 7, "MODEL.BACKBONE.PRETRAIN", False, *small])
    trained = build_model(cfg)
    assert "heads.weight" not in trained.state_dict()
    weights = tmp_path / "mgn.pth"
    torch.save({"model": trained.state_dict()}, weights)  # a FastReID-style bare checkpoint
    assert num_classes_in_checkpoint(str(weights)) == 7
    cfg.merge_from_list(["MODEL.HEADS.NUM_CLASSES", 0, "MODEL.WEIGHTS", str(weights)])
    cfg.MODEL.DEVICE = "cpu"
    with caplog.at_level(logging.WARNING):
        model = build_model_from_cfg(cfg)
    assert NOT_LOADED not in caplog.text and "shape mismatch" not in caplog.text
    assert model.b33_head.weight.shape[0] == 7


def test_old_key_names_are_mapped():
    cfg = golden_cfg(load_golden("R34"))
    cfg.MODEL.HEADS.NUM_CLASSES = 10
    model = build_model(cfg)
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
