"""The recipes shipped with fastreid, found by name wherever fastreid is installed.

In a clone the recipes are the repository's ``configs/`` (and ``projects/<Name>/configs/``);
an installed wheel carries the same files as ``fastreid/configs/`` (and
``fastreid_projects/<Name>/configs/``). Names are relative to those folders, e.g.
``"Market1501/bagtricks_R50.yml"``; the spellings used from a clone
(``"configs/Market1501/bagtricks_R50.yml"``, ``"projects/FastAttr/configs/pa100.yml"``)
resolve too, so commands copied from the README work from any folder.

    >>> from fastreid.config import get_config, get_config_file
    >>> cfg = get_config("Market1501/bagtricks_R50.yml")   # _BASE_ resolved
    >>> path = get_config_file("Synthetic/bagtricks_R18.yml")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

__all__ = [
    "get_config",
    "get_config_file",
    "list_configs",
    "packaged_config_file",
    "packaged_config_roots",
]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../fastreid
_CONFIG_SUFFIXES = (".yml", ".yaml")


def _core_root() -> Optional[Path]:
    for candidate in (_PACKAGE_DIR / "configs", _PACKAGE_DIR.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return None


def _projects_root() -> Optional[Path]:
    """The folder holding the projects (``fastreid_projects`` installed, ``projects`` in a
    clone), found without importing them (importing registers their components)."""
    for candidate in (_PACKAGE_DIR.parent / "fastreid_projects", _PACKAGE_DIR.parent / "projects"):
        if (candidate / "__init__.py").is_file():
            return candidate
    return None


def packaged_config_roots() -> List[Path]:
    """Folders searched by :func:`get_config_file`: the core recipes, then the projects."""
    return [root for root in (_core_root(), _projects_root()) if root is not None]


def packaged_config_file(name: str) -> Optional[str]:
    """The shipped recipe called ``name``, or ``None`` when there is none.

    ``name`` is relative to the core ``configs/`` folder (``"Market1501/sbs_R50.yml"``), or
    to the projects folder (``"FastAttr/configs/pa100.yml"``); a leading ``configs/``,
    ``projects/`` or ``fastreid_projects/``, and anything before the last ``configs/`` of a
    core recipe's path, are ignored.
    """
    text = str(name).replace("\\", "/").strip()
    if not text or (os.path.isabs(text) and "/configs/" not in text):
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        # A _BASE_ such as ../../../configs/Base-SBS.yml: what follows the last "configs".
        if "configs" not in parts:
            return None
        parts = parts[len(parts) - parts[::-1].index("configs") :]
        candidates = [(_core_root(), parts)]
    elif parts[0] in ("projects", "fastreid_projects"):
        candidates = [(_projects_root(), parts[1:])]
    elif parts[0] == "configs":
        candidates = [(_core_root(), parts[1:])]
    elif "configs" in parts and os.path.isabs(text):
        tail = parts[len(parts) - parts[::-1].index("configs") :]
        candidates = [(_core_root(), tail)]
    else:
        candidates = [(_core_root(), parts), (_projects_root(), parts)]
    for root, rel in candidates:
        if root is None or not rel:
            continue
        path = root.joinpath(*rel)
        if path.is_file() and path.suffix in _CONFIG_SUFFIXES:
            return str(path)
    return None


def list_configs() -> List[str]:
    """Names of every shipped recipe (core first, then ``<Project>/configs/...``)."""
    names = []
    core, projects = _core_root(), _projects_root()
    if core is not None:
        names += sorted(
            p.relative_to(core).as_posix() for p in core.rglob("*") if p.suffix in _CONFIG_SUFFIXES
        )
    if projects is not None:
        names += sorted(
            p.relative_to(projects).as_posix()
            for p in projects.glob("*/configs/**/*")
            if p.suffix in _CONFIG_SUFFIXES
        )
    return names


def get_config_file(name: str) -> str:
    """Path of the shipped recipe ``name`` (see :func:`packaged_config_file`).

    Raises:
        FileNotFoundError: no shipped recipe has that name; the message lists close names.
    """
    path = packaged_config_file(name)
    if path is None:
        raise FileNotFoundError(_not_found_message(name, local=False))
    return path


def get_config(name: str):
    """A fresh default config with the shipped recipe ``name`` merged in (``_BASE_`` too).

    Project recipes need the project's keys first: ``Trainer.add_config(cfg)`` then
    ``cfg.merge_from_file(get_config_file(name))``.
    """
    from .config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(get_config_file(name))
    return cfg


def _not_found_message(name: str, local: bool = True) -> str:
    import difflib

    known = list_configs()
    stripped = str(name).replace("\\", "/")
    for prefix in ("configs/", "projects/", "fastreid_projects/"):
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix) :]
    close = difflib.get_close_matches(stripped, known, n=3, cutoff=0.5)
    where = "not a file here, and not" if local else "not"
    hint = f" Closest: {', '.join(close)}." if close else ""
    roots = ", ".join(str(r) for r in packaged_config_roots()) or "none installed"
    return (
        f"Config file '{name}' is {where} one of the recipes shipped with fastreid "
        f"(looked in {roots}).{hint} List them with "
        "`python -c \"from fastreid.config import list_configs; print(*list_configs(), sep='\\n')\"`."
    )
