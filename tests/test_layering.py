"""The import layers of the code base, read from one table and checked over every source file.

A unit may import its own modules and the units of lower layers, nothing else: no import
goes up a layer or sideways (data, modeling, solver and evaluation know nothing of each
other). The projects are all on the top layer; each may import the core and itself, never
another project, and the core never names a project, neither in an import nor in a message.
Imports are read with ``ast`` (function-level imports included), so an import that only runs
on some code path is checked too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]

# The intended layers, lowest first. A unit is a dotted prefix; the longest match names it.
LAYERS: Tuple[Tuple[str, ...], ...] = (
    ("fastreid", "fastreid.utils", "fastreid.config"),
    ("fastreid.data", "fastreid.modeling", "fastreid.solver", "fastreid.evaluation"),
    ("fastreid.predictor",),
    ("fastreid.engine", "fastreid.export"),
    # fastreid.console runs the tools (installed as fastreid.tools) as console scripts.
    ("tools", "benchmarks", "projects.*", "fastreid.console"),
)
# Folders whose files are checked (tests/ itself may import anything to test it; the projects'
# own tests belong to their project and follow its rule).
CHECKED = ("fastreid", "tools", "benchmarks", "projects")
# Another name of the same project (FastReID spells FastCls "FastClas"): one unit, not two.
PROJECT_ALIASES = {"FastClas": "FastCls"}
PROJECT_NAMES = re.compile(
    r"\bFast(Attr|Cls|Clas|Distill|Face|Retri|Tune)\b"
    r"|\bfast(attr|cls|clas|distill|face|retri|tune)\b"
    r"|\bprojects\."
)


def _layer_of() -> Dict[str, int]:
    return {unit: level for level, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> Optional[str]:
    """The unit of a dotted module name (``projects.FastCls.fastcls.data`` -> ``projects.FastCls``),
    or None for a module outside the table (a third-party package)."""
    parts = module.split(".")
    if parts[0] == "projects":
        if len(parts) == 1:
            return "projects"
        return f"projects.{PROJECT_ALIASES.get(parts[1], parts[1])}"
    layers = _layer_of()
    if parts[0] == "fastreid" and len(parts) > 1:
        unit = f"fastreid.{parts[1]}"  # every sub-package of the core is named in the table
        return unit if unit in layers else None
    return parts[0] if parts[0] in layers else None


def level_of(unit: str) -> int:
    layers = _layer_of()
    if unit.startswith("projects."):
        return layers["projects.*"]
    return layers[unit]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                yield node.lineno, ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.lineno, node.module


def source_files() -> List[Path]:
    files: List[Path] = []
    for folder in CHECKED:
        files.extend(p for p in sorted((REPO / folder).rglob("*.py")) if "results" not in p.parts)
    return files


def layering_violations(files: List[Path]) -> List[str]:
    problems = []
    for path in files:
        here = unit_of(module_name(path))
        if here is None or here == "projects":
            if here is None:
                problems.append(f"{path.relative_to(REPO)}: in no layer of LAYERS; add it there")
            continue
        for line, target in imports_of(path):
            there = unit_of(target)
            if there is None or there == here:
                continue
            where = f"{path.relative_to(REPO)}:{line}"
            if there == "projects":
                problems.append(f"{where}: {here} imports the projects package ({target})")
            elif there.startswith("projects."):
                problems.append(f"{where}: {here} imports another project ({target})")
            elif level_of(there) >= level_of(here):
                problems.append(
                    f"{where}: {here} (layer {level_of(here)}) imports {target} "
                    f"(layer {level_of(there)})"
                )
    return problems


def project_names_in_core(files: List[Path]) -> List[str]:
    """Strings of the core (messages, module names; docstrings aside) that name a project."""
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and PROJECT_NAMES.search(node.value)
            ):
                problems.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value[:80]!r}")
    return problems


def test_every_import_follows_the_layer_table():
    files = source_files()
    assert len(files) > 100  # the walk found the code base
    assert {unit_of(module_name(p)) for p in files} >= {
        "fastreid.engine",
        "fastreid.data",
        "projects.FastCls",
        "projects.FastTune",
        "tools",
    }
    assert layering_violations(files) == []


def test_the_core_names_no_project():
    core = [p for p in source_files() if p.relative_to(REPO).parts[0] == "fastreid"]
    assert project_names_in_core(core) == []


def test_the_checks_catch_what_they_forbid(tmp_path, monkeypatch):
    # The rules fail on code that breaks them: an upward import, a sideways import, a project
    # importing another, a core message naming a project, a file outside the table.
    bad = {
        "fastreid/data/bad_up.py": "from fastreid.engine import DefaultTrainer\n",
        "fastreid/modeling/bad_side.py": "def f():\n    from ..evaluation import rank\n",
        "projects/FastAttr/fastattr/bad_peer.py": "import projects.FastCls.fastcls\n",
        "projects/FastAttr/fastattr/good.py": "from fastreid.engine import DefaultTrainer\n"
        "from .datasets import AttrDataset\n",
        "fastreid/solver/bad_name.py": 'def f():\n    raise ValueError("use FastFace")\n',
        "fastreid/newpkg/mod.py": "x = 1\n",
    }
    for relative, text in bad.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    files = sorted(tmp_path.rglob("*.py"))
    problems = "\n".join(layering_violations(files))
    assert "bad_up.py:1: fastreid.data (layer 1) imports fastreid.engine (layer 3)" in problems
    assert "bad_side.py:2: fastreid.modeling (layer 1) imports fastreid.evaluation" in problems
    assert "bad_peer.py:1: projects.FastAttr imports another project" in problems
    assert "good.py" not in problems
    assert "newpkg/mod.py: in no layer" in problems
    names = project_names_in_core([tmp_path / "fastreid/solver/bad_name.py"])
    assert len(names) == 1 and "FastFace" in names[0]
