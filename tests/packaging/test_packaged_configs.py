"""Shipped recipes found by name, ``--config-file`` falling back to them, and the projects
package refusing to be imported under two names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fastreid.config import get_cfg, get_config, get_config_file, list_configs

REPO = Path(__file__).resolve().parents[2]


def test_get_config_merges_the_recipe_and_its_base():
    cfg = get_config("Market1501/sbs_R50.yml")
    recipe = yaml.safe_load((REPO / "configs" / "Market1501" / "sbs_R50.yml").read_text())
    base = yaml.safe_load((REPO / "configs" / "Base-SBS.yml").read_text())
    assert recipe["_BASE_"] == "../Base-SBS.yml"
    assert cfg.OUTPUT_DIR == recipe["OUTPUT_DIR"]
    assert cfg.MODEL.HEADS.CLS_LAYER == base["MODEL"]["HEADS"]["CLS_LAYER"]  # from the base
    assert cfg.MODEL.HEADS.CLS_LAYER != get_cfg().MODEL.HEADS.CLS_LAYER


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Market1501/bagtricks_R50.yml", "configs/Market1501/bagtricks_R50.yml"),
        ("configs/Market1501/bagtricks_R50.yml", "configs/Market1501/bagtricks_R50.yml"),
        ("./configs/Base-SBS.yml", "configs/Base-SBS.yml"),
        ("projects/FastAttr/configs/pa100.yml", "projects/FastAttr/configs/pa100.yml"),
        ("FastAttr/configs/pa100.yml", "projects/FastAttr/configs/pa100.yml"),
        ("../../../configs/Base-SBS.yml", "configs/Base-SBS.yml"),
    ],
)
def test_get_config_file_accepts_the_spellings_of_the_readme(name, expected):
    assert Path(get_config_file(name)) == REPO / expected


def test_list_configs_names_every_shipped_recipe():
    names = list_configs()
    on_disk = [p for p in (REPO / "configs").rglob("*") if p.suffix in (".yml", ".yaml")]
    on_disk += [p for p in REPO.glob("projects/*/configs/**/*") if p.suffix in (".yml", ".yaml")]
    assert len(names) == len(on_disk) == len(set(names))
    assert all(Path(get_config_file(n)).is_file() for n in names)


def test_unknown_recipe_names_the_closest_ones():
    with pytest.raises(FileNotFoundError, match=r"Closest: Market1501/bagtricks_R50\.yml"):
        get_config_file("Market1501/bagtrick_R50.yml")
    with pytest.raises(FileNotFoundError, match="not one of the recipes"):
        get_config_file("no/such.yml")


def test_merge_from_file_falls_back_to_the_shipped_recipe(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    cfg = get_cfg()
    cfg.merge_from_file("configs/Synthetic/bagtricks_R18.yml")
    assert cfg.DATASETS.NAMES == ("SyntheticReID",)
    assert cfg.MODEL.BACKBONE.DEPTH == "18x"
    assert "using the recipe shipped with fastreid" in capsys.readouterr().err

    # A file of that name in the current folder wins over the shipped one.
    local = tmp_path / "configs" / "Synthetic"
    local.mkdir(parents=True)
    (local / "bagtricks_R18.yml").write_text("MODEL:\n  BACKBONE:\n    DEPTH: 34x\n")
    cfg = get_cfg()
    cfg.merge_from_file("configs/Synthetic/bagtricks_R18.yml")
    assert cfg.MODEL.BACKBONE.DEPTH == "34x"


def test_missing_local_base_that_is_no_shipped_recipe_names_the_file(tmp_path):
    child = tmp_path / "child.yml"
    child.write_text("_BASE_: ../nowhere/base.yml\n")
    with pytest.raises(FileNotFoundError, match="has _BASE_"):
        get_cfg().merge_from_file(str(child))


def test_projects_refuse_a_second_name_for_the_same_folder(tmp_path):
    # `fastreid_projects` here is the repository's projects/ folder, as an editable install
    # maps it; importing both names would register every component twice.
    (tmp_path / "fastreid_projects").symlink_to(REPO / "projects")
    code = "import projects.FastAttr.fastattr\nimport fastreid_projects\n"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "already imported as 'projects'" in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-c", "import fastreid_projects.FastAttr.fastattr"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
