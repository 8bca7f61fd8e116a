"""Every shipped project config (FastTune's search configs aside) fixes SEED, so the figures
the READMEs quote come from seeded runs."""

import glob
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECTS = ("FastAttr", "FastCls", "FastDistill", "FastFace", "FastRetri")


def _seed(path):
    """SEED of a config file, following its _BASE_ chain (yacs semantics: the file wins)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if "SEED" in data:
        return data["SEED"]
    base = data.get("_BASE_")
    if not base:
        return None
    return _seed(os.path.normpath(os.path.join(os.path.dirname(path), base)))


def test_every_shipped_project_config_sets_a_seed():
    configs = [
        path
        for name in PROJECTS
        for ext in ("yml", "yaml")
        for path in glob.glob(os.path.join(ROOT, "projects", name, "configs", "**", f"*.{ext}"),
                              recursive=True)
    ]  # fmt: skip
    assert len(configs) >= 20
    unseeded = [os.path.relpath(p, ROOT) for p in configs if not isinstance(_seed(p), int)]
    assert unseeded == []
    negative = [os.path.relpath(p, ROOT) for p in configs if _seed(p) < 0]
    assert negative == []
