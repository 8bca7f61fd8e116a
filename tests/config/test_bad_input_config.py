"""Bad input, fastReID configuration files and overrides: misspelled keys, wrong types, _BASE_ chains."""

from __future__ import annotations

import pytest

from fastreid.config import ConfigKeyError, ConfigValueError, get_cfg

from ..bad_input import RECIPE, error_line

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


# -- configuration ---------------------------------------------------------------------------
def test_misspelled_yaml_key_names_the_closest_valid_key(tmp_path):
    path = tmp_path / "typo.yml"
    path.write_text(f"_BASE_: {RECIPE}\nMODEL:\n  BACKBONE:\n    DEPHT: 18x\n")
    with pytest.raises(ConfigKeyError, match=r"DEPHT.*typo\.yml.*MODEL\.BACKBONE\.DEPTH"):
        get_cfg().merge_from_file(str(path))


def test_override_of_the_wrong_type_names_the_key_and_the_expected_type():
    with pytest.raises(ConfigValueError, match=r"'SOLVER\.BASE_LR'.*expects a number.*'abc'"):
        get_cfg().merge_from_list(["SOLVER.BASE_LR", "abc"])
    with pytest.raises(ConfigValueError, match=r"'SOLVER\.MAX_EPOCH'.*expects an integer.*1\.5"):
        get_cfg().merge_from_list(["SOLVER.MAX_EPOCH", "1.5"])


def test_yaml_value_of_the_wrong_type_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "bad_type.yml"
    path.write_text("SOLVER:\n  IMS_PER_BATCH: lots\n")
    with pytest.raises(ConfigValueError, match=r"'SOLVER\.IMS_PER_BATCH'.*bad_type\.yml.*integer"):
        get_cfg().merge_from_file(str(path))


def test_value_given_to_a_group_of_keys_names_one_of_its_keys():
    with pytest.raises(ConfigValueError, match=r"MODEL\.BACKBONE.*group.*MODEL\.BACKBONE\.NAME"):
        get_cfg().merge_from_list(["MODEL.BACKBONE", "resnet"])


def test_base_cycle_names_the_chain(tmp_path, capsys):
    (tmp_path / "a.yml").write_text("_BASE_: b.yml\n")
    (tmp_path / "b.yml").write_text("_BASE_: a.yml\n")
    line = error_line(capsys, get_cfg().merge_from_file, str(tmp_path / "a.yml"))
    assert "_BASE_ cycle" in line
    assert line.index("a.yml") < line.index("b.yml") < line.rindex("a.yml")


def test_missing_base_names_the_file_that_references_it(tmp_path, capsys):
    child = tmp_path / "child.yml"
    child.write_text("_BASE_: ../nowhere/Base.yml\n")
    line = error_line(capsys, get_cfg().merge_from_file, str(child))
    assert f"'{child}' has _BASE_" in line and "Base.yml" in line
