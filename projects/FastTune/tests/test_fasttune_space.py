"""The search space: parsing every distribution, writing sampled values into a config, the
default (FastReID's) space, and one clear error per kind of bad entry."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from fastreid.config import get_cfg
from projects.FastTune.fasttune import (
    FASTREID_SPACE,
    add_tune_config,
    apply_params,
    parse_space,
    space_from_cfg,
)

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PROJECT))
CONFIGS = os.path.join(PROJECT, "configs")


def tune_cfg():
    return add_tune_config(get_cfg())


def test_every_distribution_parses_and_samples_inside_its_bounds():
    cfg = tune_cfg()
    params = parse_space(
        cfg,
        {
            "SOLVER.BASE_LR": ["loguniform", 1e-4, 1e-2],
            "INPUT.REA.PROB": ["uniform", 0.1, 0.6],
            "DATALOADER.NUM_INSTANCE": ["randint", 2, 5],
            "MODEL.HEADS.MARGIN": ["quniform", 0.1, 0.5, 0.05],
            "MODEL.HEADS.SCALE": ["quniform", 16, 64, 16],  # an integer key
            "INPUT.SIZE_TRAIN": ["choice", [[64, 32], [128, 64]]],
            "SOLVER.OPT": ["choice", ["Adam", "SGD"]],
            "INPUT.CJ.ENABLED": ["choice", [True, False]],
        },
    )
    by_key = {p.key: p for p in params}
    domains = {p.key: p.to_ray() for p in params}
    rng = np.random.default_rng(0)
    seen = {k: set() for k in by_key}
    for _ in range(200):
        sampled = {k: d.sample(random_state=rng) for k, d in domains.items()}
        out = apply_params(cfg, params, sampled)
        lr = out.SOLVER.BASE_LR
        assert 1e-4 <= lr <= 1e-2
        assert 0.1 <= out.INPUT.REA.PROB <= 0.6
        assert out.DATALOADER.NUM_INSTANCE in (2, 3, 4)  # randint excludes high
        margin = out.MODEL.HEADS.MARGIN
        assert math.isclose(round(margin / 0.05) * 0.05, margin, abs_tol=1e-9)
        assert isinstance(out.MODEL.HEADS.SCALE, int) and out.MODEL.HEADS.SCALE in (16, 32, 48, 64)
        assert list(out.INPUT.SIZE_TRAIN) in ([64, 32], [128, 64])
        for k in seen:
            value = out
            for part in k.split("."):
                value = value[part]
            seen[k].add(tuple(value) if isinstance(value, (list, tuple)) else value)
    # loguniform: about half the samples below the geometric mean 1e-3
    lrs = [domains["SOLVER.BASE_LR"].sample(random_state=rng) for _ in range(2000)]
    assert 0.45 < np.mean(np.array(lrs) < 1e-3) < 0.55
    assert seen["DATALOADER.NUM_INSTANCE"] == {2, 3, 4}
    assert seen["SOLVER.OPT"] == {"Adam", "SGD"}
    assert seen["INPUT.CJ.ENABLED"] == {True, False}
    # the base config is left as it was
    assert cfg.SOLVER.OPT == get_cfg().SOLVER.OPT


def test_list_choices_travel_as_text_and_come_back_as_lists():
    cfg = tune_cfg()
    (param,) = parse_space(cfg, {"INPUT.SIZE_TRAIN": ["choice", [[256, 128], [384, 128]]]})
    assert param.to_ray().categories == ["[256, 128]", "[384, 128]"]
    assert param.decode("[384, 128]") == [384, 128]
    with pytest.raises(ValueError, match="not one of the choices"):
        param.decode("[1, 2]")


def test_empty_space_is_fastreids_and_the_yaml_section_and_file_are_read(tmp_path):
    cfg = tune_cfg()
    assert {p.key: [p.dist, list(p.args)] for p in space_from_cfg(cfg)} == FASTREID_SPACE

    path = tmp_path / "c.yml"
    path.write_text(
        "TUNE:\n  SPACE:\n    SOLVER.BASE_LR: [loguniform, 1.0e-4, 1.0e-2]\n"
        "    MODEL.HEADS.SCALE: [choice, [32, 64]]\n"
    )
    cfg = tune_cfg()
    cfg.merge_from_file(str(path))
    assert [p.describe() for p in space_from_cfg(cfg)] == [
        "SOLVER.BASE_LR: loguniform[0.0001, 0.01]",
        "MODEL.HEADS.SCALE: choice[32, 64]",
    ]
    # a space file (mapping form accepted there) replaces TUNE.SPACE
    space_file = tmp_path / "space.yml"
    space_file.write_text("SOLVER.WEIGHT_DECAY: {uniform: [0.0, 0.001]}\n")
    cfg.merge_from_list(["TUNE.SPACE_FILE", str(space_file)])
    assert [p.describe() for p in space_from_cfg(cfg)] == [
        "SOLVER.WEIGHT_DECAY: uniform[0.0, 0.001]"
    ]


@pytest.mark.parametrize(
    "space, error, message",
    [
        (
            {"SOLVER.BASE_LRR": ["uniform", 0.1, 0.2]},
            KeyError,
            "Unknown config key 'SOLVER.BASE_LRR'.*SOLVER.BASE_LR",
        ),
        ({"SOLVER": ["choice", [1]]}, ValueError, "'SOLVER' is a group of keys"),
        ({"TUNE.SEED": ["choice", [1, 2]]}, ValueError, "TUNE.SEED cannot be searched"),
        (
            {"SOLVER.BASE_LR": ["lognormal", 0.1, 0.2]},
            ValueError,
            "unknown distribution 'lognormal'",
        ),
        (
            {"SOLVER.BASE_LR": ["uniform", 0.1]},
            ValueError,
            r"write uniform as \[uniform, low, high\]",
        ),
        ({"SOLVER.BASE_LR": ["uniform", 0.3, 0.1]}, ValueError, "needs low < high"),
        ({"SOLVER.BASE_LR": ["loguniform", 0.0, 0.1]}, ValueError, "loguniform needs low > 0"),
        ({"SOLVER.BASE_LR": ["quniform", 0.0, 0.1, 0]}, ValueError, "step q > 0"),
        ({"SOLVER.BASE_LR": 0.1}, ValueError, "a distribution must be one of"),
        ({"SOLVER.BASE_LR": ["choice", 0.1, 0.2]}, ValueError, r"\[choice, \[a, b, ...\]\]"),
        ({"SOLVER.BASE_LR": ["choice", []]}, ValueError, "at least one value"),
        ({"SOLVER.IMS_PER_BATCH": ["uniform", 16, 64]}, ValueError, "the key is an integer"),
        ({"SOLVER.IMS_PER_BATCH": ["choice", [32, 48.5]]}, ValueError, "48.5 does not fit"),
        ({"SOLVER.OPT": ["uniform", 0.0, 1.0]}, ValueError, "use choice"),
        ({"SOLVER.BASE_LR": ["randint", 0.5, 3]}, ValueError, "randint takes integer bounds"),
    ],
)
def test_bad_entries_get_one_clear_error(space, error, message):
    with pytest.raises(error, match=message):
        parse_space(tune_cfg(), space)


def test_missing_space_file_is_named(tmp_path):
    cfg = tune_cfg()
    cfg.TUNE.SPACE_FILE = str(tmp_path / "nope.yml")
    with pytest.raises(FileNotFoundError, match="nope.yml"):
        space_from_cfg(cfg)


def _fastreid_search_trial_text() -> str:
    """FastReID's search_trial.yml: ours with its hard-coded pretrain path put back."""
    with open(os.path.join(CONFIGS, "search_trial.yml"), encoding="utf-8") as f:
        ours = f.read()
    assert ours.count('PRETRAIN_PATH: ""') == 1
    return ours.replace(
        'PRETRAIN_PATH: ""',
        "PRETRAIN_PATH: /export/home/lxy/.cache/torch/checkpoints/resnet34_ibn_a-94bc1577.pth",
    )


def test_fastreids_search_trial_loads_unchanged_and_pretrain_path_is_an_override(tmp_path):
    original = tmp_path / "search_trial.yml"
    original.write_text(_fastreid_search_trial_text())
    for cfg in (tune_cfg(), get_cfg()):  # with and without the TUNE keys
        cfg.merge_from_file(str(original))
        assert cfg.MODEL.BACKBONE.DEPTH == "34x" and cfg.MODEL.HEADS.CLS_LAYER == "CircleSoftmax"
        assert cfg.DATALOADER.NUM_INSTANCE == 16 and cfg.SOLVER.DELAY_EPOCHS == 30
    cfg = tune_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, "search_trial.yml"))
    cfg.merge_from_list(["MODEL.BACKBONE.PRETRAIN_PATH", "weights/r34_ibn.pth"])
    assert cfg.MODEL.BACKBONE.PRETRAIN_PATH == "weights/r34_ibn.pth"
    # the wider space shipped with it is valid for it
    cfg.merge_from_list(["TUNE.SPACE_FILE", os.path.join(CONFIGS, "space_reid.yml")])
    keys = [p.key for p in space_from_cfg(cfg)]
    assert "SOLVER.BASE_LR" in keys and "INPUT.AUTOAUG.PROB" in keys


def test_every_shipped_config_and_space_is_valid():
    for name in sorted(os.listdir(CONFIGS)):
        path = os.path.join(CONFIGS, name)
        with open(path, encoding="utf-8") as f:
            text = yaml.safe_load(f)
        cfg = tune_cfg()
        if "MODEL" in text or "_BASE_" in text:
            cfg.merge_from_file(path)
        else:
            cfg.TUNE.SPACE_FILE = path
        assert space_from_cfg(cfg), name


def test_importing_the_project_does_not_import_ray():
    code = (
        "import sys, projects.FastTune.fasttune, projects.FastTune.fasttune.search, "
        "projects.FastTune.fasttune.results; print('ray' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_pbt_perturbations_are_clipped_to_the_range_and_choices_mutate_as_lists():
    uniform, randint, quniform, choice = parse_space(
        tune_cfg(),
        {
            "INPUT.REA.PROB": ["uniform", 0.0, 0.8],
            "DATALOADER.NUM_INSTANCE": ["randint", 2, 9],
            "MODEL.HEADS.MARGIN": ["quniform", 0.1, 0.5, 0.1],
            "SOLVER.IMS_PER_BATCH": ["choice", [32, 64]],
        },
    )
    assert uniform.decode(0.96) == 0.8 and uniform.decode(0.3) == 0.3
    assert randint.decode(10.8) == 8 and randint.decode(1.6) == 2 and randint.decode(4.4) == 4
    assert quniform.decode(0.57) == pytest.approx(0.5) and quniform.decode(0.23) == pytest.approx(
        0.2
    )
    assert choice.to_pbt() == [32, 64]  # PBT moves to a neighbouring choice
    assert uniform.to_pbt().lower == 0.0 and uniform.to_pbt().upper == 0.8
