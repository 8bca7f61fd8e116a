"""Package layout (metadata lives in pyproject.toml).

The wheel holds, besides the ``fastreid`` package:

* ``fastreid/configs/``: the repository's ``configs/`` (found by
  ``fastreid.config.get_config_file``, and by ``--config-file`` from any folder);
* ``fastreid/tools/``: the repository's ``tools/``, behind the ``fastreid-*`` console scripts;
* ``fastreid_projects``: the repository's ``projects/`` (with their configs), under a name the
  toolbox owns rather than a generic top-level ``projects``.

The repository keeps its layout: ``python projects/<Name>/train_net.py`` and
``import projects.<Name>`` work from a clone.
"""

from setuptools import find_namespace_packages, find_packages, setup

_EXCLUDE = ["*.tests", "*.tests.*", "*.benchmarks", "*.benchmarks.*"]


def _mapped(folder: str, name: str, namespaces: bool = False) -> list:
    """Packages found under ``folder``, renamed to live under ``name``; with ``namespaces``
    the folders of data files (recipes) count as packages too."""
    if namespaces:
        found = find_namespace_packages(where=folder, exclude=_EXCLUDE + ["__pycache__"])
    else:
        found = find_packages(where=folder, exclude=_EXCLUDE)
    return [name] + [f"{name}.{package}" for package in found]


setup(
    packages=(
        find_packages(include=["fastreid", "fastreid.*"], exclude=_EXCLUDE)
        + _mapped("configs", "fastreid.configs", namespaces=True)
        + _mapped("tools", "fastreid.tools")
        + sorted(
            set(_mapped("projects", "fastreid_projects"))
            | {p for p in _mapped("projects", "fastreid_projects", True) if ".configs" in p}
        )
    ),
    package_dir={
        "fastreid.configs": "configs",
        "fastreid.tools": "tools",
        "fastreid_projects": "projects",
    },
    package_data={
        "": ["*.yml", "*.yaml"],
        "fastreid.export.caffe": ["caffe.proto"],
        "fastreid.tools.deploy": ["README.md"],
        "fastreid_projects": ["*/README.md"],
    },
)
