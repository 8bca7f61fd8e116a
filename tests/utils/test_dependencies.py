"""A missing optional package ends in one error naming the fastreid extra that brings it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fastreid.utils.dependencies import EXTRAS, MissingDependencyError, install_hint, require
from fastreid.utils.errors import exit_on_bad_input


def _missing(monkeypatch, *modules: str) -> None:
    for module in modules:  # None in sys.modules: `import module` raises ImportError
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(
    "module, extra",
    [("onnxruntime", "deploy"), ("cv2", "deploy"), ("google.protobuf", "deploy"),
     ("faiss", "faiss"), ("ray", "tune"), ("ray.tune", "tune"), ("optuna", "tune")],
)  # fmt: skip
def test_require_names_the_extra_in_one_line(monkeypatch, module, extra):
    _missing(monkeypatch, module)
    with pytest.raises(MissingDependencyError) as info:
        require(module, "Doing X")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"Doing X needs the Python package '{module}'")
    assert f"fastreid's '{extra}' extra" in message
    assert f'pip install -e ".[{extra}]"' in message
    assert "fastreid[" not in message  # that name is another PyPI package


def test_require_without_an_extra_names_the_package(monkeypatch):
    _missing(monkeypatch, "tensorrt")
    with pytest.raises(MissingDependencyError, match=r"'tensorrt', which .*pip install tensorrt"):
        require("tensorrt", "TensorRT export")
    assert "extra" not in install_hint("tensorrt")


def test_require_returns_the_module_when_present():
    assert require("numpy", "Arrays") is np


def test_a_missing_dependency_of_the_package_is_named(monkeypatch):
    # ray installed without its tune dependencies: the import of ray.tune fails on another name.
    def broken(name, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    monkeypatch.setattr("importlib.import_module", broken)
    with pytest.raises(MissingDependencyError, match=r"failed on 'pyarrow'.*\.\[tune\]"):
        require("ray.tune", "A FastTune search")


def test_every_extra_named_exists_in_pyproject():
    from pathlib import Path

    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert {extra for extra, _ in EXTRAS.values() if extra} <= set(extras)
    assert any(dep.startswith("opencv-python-headless") and "<5" in dep for dep in extras["deploy"])


def test_the_callers_report_the_extra(monkeypatch, capsys):
    from fastreid.evaluation import knn, visualizer
    from projects.FastTune.fasttune import search

    _missing(monkeypatch, "cv2", "faiss", "ray")
    with pytest.raises(MissingDependencyError, match=r"'deploy' extra"):
        visualizer._load_thumbnail("", (8, 4))
    with pytest.raises(MissingDependencyError, match=r"'faiss' extra"):
        knn.resolve_knn_backend("faiss")
    with pytest.raises(MissingDependencyError, match=r"'tune' extra"):
        search.connect_ray("")
    for algo, module in (("hyperopt", "hyperopt"), ("optuna", "optuna"), ("bohb", "hpbandster")):
        _missing(monkeypatch, module)
        with pytest.raises(MissingDependencyError, match=rf"--srch-algo {algo} needs .*'{module}'"):
            search.build_search_alg(algo, seed=0)

    # Tools print it as one `error:` line and exit with code 2.
    monkeypatch.delenv("FASTREID_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        exit_on_bad_input(search.connect_ray, "")
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: A FastTune search needs the Python package 'ray'")
    assert "'tune' extra" in err[0]
