"""FastReID's older spellings load: renamed keys and a single string for a list key."""

import pytest

from fastreid.config import get_cfg
from fastreid.config.config import ConfigValueError


def test_fp16_enabled_in_a_file_sets_amp_enabled(tmp_path):
    path = tmp_path / "old.yml"
    path.write_text("SOLVER:\n  FP16_ENABLED: True\n")
    cfg = get_cfg()
    assert not cfg.SOLVER.AMP.ENABLED
    cfg.merge_from_file(str(path))
    assert cfg.SOLVER.AMP.ENABLED
    assert "FP16_ENABLED" not in cfg.SOLVER


def test_fp16_enabled_on_the_command_line():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.FP16_ENABLED", "True"])
    assert cfg.SOLVER.AMP.ENABLED


def test_a_string_for_a_list_key_becomes_a_one_element_list(tmp_path):
    path = tmp_path / "kd.yml"
    path.write_text("KD:\n  MODEL_CONFIG: logs/t/config.yaml\n  MODEL_WEIGHTS: logs/t/m.pth\n")
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    assert cfg.KD.MODEL_CONFIG == ["logs/t/config.yaml"]
    cfg.merge_from_list(["KD.MODEL_WEIGHTS", "other.pth", "DATASETS.NAMES", "('A', 'B')"])
    assert cfg.KD.MODEL_WEIGHTS == ["other.pth"]
    assert list(cfg.DATASETS.NAMES) == ["A", "B"]


def test_a_list_for_a_string_key_is_still_refused():
    with pytest.raises(ConfigValueError, match="OUTPUT_DIR"):
        get_cfg().merge_from_list(["OUTPUT_DIR", "['a', 'b']"])
