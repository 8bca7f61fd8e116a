"""Config loading: FastReID recipes, _BASE_ chains, overrides and key errors."""

from pathlib import Path

import pytest

from fastreid.config import CfgNode, ConfigKeyError, configurable, get_cfg

REPO = Path(__file__).resolve().parents[2]


def test_fastreid_sbs_ibn_recipe_loads_through_its_base_chain():
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs/Market1501/sbs_R50-ibn.yml"))
    # From the recipe itself.
    assert cfg.MODEL.BACKBONE.WITH_IBN is True
    assert cfg.OUTPUT_DIR == "logs/market1501/sbs_R50-ibn"
    # From Base-SBS.yml, overriding Base-bagtricks.yml.
    assert cfg.MODEL.HEADS.POOL_LAYER == "GeneralizedMeanPoolingP"
    assert cfg.MODEL.HEADS.CLS_LAYER == "CircleSoftmax"
    assert cfg.SOLVER.SCHED == "CosineAnnealingLR"
    assert cfg.INPUT.SIZE_TRAIN == [384, 128]
    # From Base-bagtricks.yml only.
    assert cfg.DATALOADER.SAMPLER_TRAIN == "NaiveIdentitySampler"
    assert tuple(cfg.MODEL.LOSSES.NAME) == ("CrossEntropyLoss", "TripletLoss")


def test_every_shipped_recipe_loads():
    recipes = sorted((REPO / "configs").rglob("*.yml"))
    assert len(recipes) >= 12
    for recipe in recipes:
        cfg = get_cfg()
        cfg.merge_from_file(str(recipe))


def test_base_path_is_relative_to_the_yaml_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "base.yml").write_text("SOLVER:\n  BASE_LR: 0.5\n  MAX_EPOCH: 7\n")
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "a" / "b" / "mid.yml").write_text("_BASE_: ../base.yml\nSOLVER:\n  MAX_EPOCH: 9\n")
    (tmp_path / "top.yml").write_text("_BASE_: a/b/mid.yml\nOUTPUT_DIR: out\n")
    monkeypatch.chdir(tmp_path / "a")
    cfg = get_cfg()
    cfg.merge_from_file(str(tmp_path / "top.yml"))
    assert cfg.SOLVER.BASE_LR == 0.5
    assert cfg.SOLVER.MAX_EPOCH == 9
    assert cfg.OUTPUT_DIR == "out"


def test_command_line_overrides_apply_with_types():
    cfg = get_cfg()
    cfg.merge_from_list(
        ["SOLVER.BASE_LR", "1", "INPUT.SIZE_TRAIN", "[128, 64]", "MODEL.DEVICE", "cpu"]
    )
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.INPUT.SIZE_TRAIN == [128, 64]
    assert cfg.MODEL.DEVICE == "cpu"


def test_int_in_yaml_is_accepted_for_a_float_key(tmp_path):
    (tmp_path / "c.yml").write_text("SOLVER:\n  BASE_LR: 1\n")
    cfg = get_cfg()
    cfg.merge_from_file(str(tmp_path / "c.yml"))
    assert cfg.SOLVER.BASE_LR == 1.0


def test_misspelled_override_names_the_closest_keys():
    cfg = get_cfg()
    with pytest.raises(ConfigKeyError) as err:
        cfg.merge_from_list(["SOLVER.BASE_LRR", "0.1"])
    assert "SOLVER.BASE_LRR" in str(err.value)
    assert "SOLVER.BASE_LR" in str(err.value).split("Closest valid keys:")[1]


def test_misspelled_key_in_yaml_names_file_and_closest_key(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("MODEL:\n  BACKBONE:\n    WITH_IBM: True\n")
    cfg = get_cfg()
    with pytest.raises(KeyError) as err:
        cfg.merge_from_file(str(path))
    message = str(err.value)
    assert "MODEL.BACKBONE.WITH_IBM" in message
    assert "bad.yml" in message
    assert "MODEL.BACKBONE.WITH_IBN" in message


def test_odd_override_list_is_rejected():
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        get_cfg().merge_from_list(["SOLVER.BASE_LR"])


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yml"):
        get_cfg().merge_from_file(str(tmp_path / "nope.yml"))


def test_project_extension_adds_keys_that_yaml_can_then_set(tmp_path):
    def add_attr_config(cfg: CfgNode) -> None:
        cfg.MODEL.LOSSES.BCE = CfgNode()
        cfg.MODEL.LOSSES.BCE.WEIGHT_ENABLED = True
        cfg.MODEL.LOSSES.BCE.SCALE = 1.0

    (tmp_path / "attr.yml").write_text("MODEL:\n  LOSSES:\n    BCE:\n      SCALE: 2.0\n")
    cfg = get_cfg()
    add_attr_config(cfg)
    cfg.merge_from_file(str(tmp_path / "attr.yml"))
    assert cfg.MODEL.LOSSES.BCE.SCALE == 2.0
    with pytest.raises(KeyError):
        get_cfg().merge_from_file(str(tmp_path / "attr.yml"))


def test_defaults_match_fastreid_for_common_keys():
    cfg = get_cfg()
    assert cfg.MODEL.META_ARCHITECTURE == "Baseline"
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_backbone"
    assert cfg.MODEL.HEADS.NAME == "EmbeddingHead"
    assert cfg.DATALOADER.NUM_INSTANCE == 4
    assert cfg.TEST.RERANK.K1 == 20 and cfg.TEST.RERANK.K2 == 6
    assert cfg.SOLVER.IMS_PER_BATCH == 64


def test_every_default_key_has_a_comment():
    source = (REPO / "fastreid/config/defaults.py").read_text().splitlines()
    for i, line in enumerate(source):
        if line.startswith("_C.") and "= CN()" not in line:
            previous = source[i - 1].strip()
            assert previous.startswith("#") or line.count("#"), f"no comment for: {line}"


class _Scaler:
    @configurable
    def __init__(self, *, factor: float, offset: float = 0.0):
        self.factor = factor
        self.offset = offset

    @classmethod
    def from_config(cls, cfg, offset: float = 0.0):
        return {"factor": cfg.SOLVER.BASE_LR, "offset": offset}


def test_configurable_class_has_two_doors():
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 0.25
    assert _Scaler(factor=2.0).factor == 2.0
    from_cfg = _Scaler(cfg, offset=1.0)
    assert (from_cfg.factor, from_cfg.offset) == (0.25, 1.0)


def test_configurable_function_has_two_doors():
    def _from_config(cfg):
        return {"size": tuple(cfg.INPUT.SIZE_TEST)}

    @configurable(from_config=_from_config)
    def make(*, size):
        return size

    assert make(size=(1, 2)) == (1, 2)
    assert make(get_cfg()) == (256, 128)


def test_unfrozen_allows_changes_and_freezes_again_even_after_an_error():
    cfg = get_cfg()
    cfg.freeze()
    with cfg.unfrozen():
        cfg.SEED = 7
    assert cfg.SEED == 7 and cfg.is_frozen()
    with pytest.raises(RuntimeError):
        with cfg.unfrozen():
            raise RuntimeError("inside the block")
    assert cfg.is_frozen()
    with pytest.raises(AttributeError):
        cfg.SEED = 8
    unfrozen = get_cfg()
    with unfrozen.unfrozen():
        unfrozen.SEED = 3
    assert not unfrozen.is_frozen()
