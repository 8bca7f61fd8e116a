"""The wheel, built from the repository and installed in a fresh environment, trains the
synthetic recipe from a folder that holds no configs, through its console scripts.

The fresh venv gets the wheel first (``--no-deps --no-index``: nothing is downloaded), then a
``.pth`` line that makes the dependencies of the running interpreter (torch, ...) visible;
the running interpreter's own fastreid (an editable install of the repository) is not
visible there, so everything below runs the installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "fastreid", "configs", "tools", "projects")
CONSOLE_SCRIPTS = (
    "fastreid-train",
    "fastreid-eval",
    "fastreid-synthetic",
    "fastreid-extract",
    "fastreid-visualize",
    "fastreid-export-onnx",
    "fastreid-export-torchscript",
    "fastreid-export-caffe",
)

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the repository's sources (no build files in the clone)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "*.egg-info", "results")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", root / "dist", src],
        cwd=root, env=_env(),
    )  # fmt: skip
    (found,) = (root / "dist").glob("fastreid-*.whl")
    return found


def test_wheel_holds_configs_caffe_proto_tools_and_no_top_level_projects(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert "projects" not in tops
    assert {"fastreid", "fastreid_projects"} <= tops
    shipped = {n for n in names if n.endswith((".yml", ".yaml"))}
    in_repo = {
        str(p.relative_to(REPO))
        for p in [*REPO.glob("configs/**/*"), *REPO.glob("projects/*/configs/**/*")]
        if p.suffix in (".yml", ".yaml")
    }
    expected = {
        n.replace("configs/", "fastreid/configs/", 1)
        if n.startswith("configs/")
        else n.replace("projects/", "fastreid_projects/", 1)
        for n in in_repo
    }
    assert expected and shipped == expected
    assert "fastreid/export/caffe/caffe.proto" in names
    assert "fastreid/tools/deploy/onnx_export.py" in names
    assert not [n for n in names if "/tests/" in n]
    dist_info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(dist_info).decode()
    for script in CONSOLE_SCRIPTS:
        assert f"\n{script} = " in entry_points, script


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel and seeing this interpreter's dependencies."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=env_dir.parent)
    python = env_dir / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--ignore-installed", "-q", wheel],
        cwd=env_dir.parent, env=_env(),
    )  # fmt: skip
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # Only a path line: the editable-install hooks of this interpreter's site-packages stay off.
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTREID_DATASETS")}
    env.update(OMP_NUM_THREADS="1", FASTREID_PROGRESS="0", **extra)
    return env


def test_installed_copy_is_the_one_imported(venv, tmp_path):
    out = _run(
        [venv / "bin" / "python", "-c",
         "import fastreid, fastreid_projects, importlib.util as u; "
         "print(fastreid.__file__); print(fastreid_projects.__file__); "
         "print(u.find_spec('projects'))"],
        cwd=tmp_path, env=_env(),
    ).stdout.splitlines()  # fmt: skip
    assert all(str(venv) in line for line in out[:2]), out
    assert out[2] == "None"  # no top-level `projects` to shadow the user's own


def test_wheel_trains_the_synthetic_recipe_from_another_folder(venv, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = _env(FASTREID_DATASETS=str(tmp_path / "datasets"))
    bin_dir = venv / "bin"
    _run(
        [bin_dir / "fastreid-synthetic", "--num-ids", "16", "--height", "64", "--width", "32",
         "--num-cams", "3"],
        cwd=work, env=env,
    )  # fmt: skip
    proc = _run(
        [bin_dir / "fastreid-train", "--config-file", "configs/Synthetic/bagtricks_R18.yml",
         "OUTPUT_DIR", "run", "INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]",
         "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_ITERS", "1",
         "SOLVER.STEPS", "[1]", "TEST.EVAL_PERIOD", "1", "DATALOADER.NUM_WORKERS", "0"],
        cwd=work, env=env,
    )  # fmt: skip
    assert not (work / "configs").exists()
    assert "using the recipe shipped with fastreid" in proc.stderr
    assert (work / "run" / "model_final.pth").is_file()
    log = (work / "run" / "log.txt").read_text()
    assert "Rank-1" in log or "R1" in log or "mAP" in log

    # The trained model through the export and extraction console scripts (Caffe export
    # reads caffe.proto from the wheel).
    weights = ["MODEL.WEIGHTS", "run/model_final.pth", "INPUT.SIZE_TEST", "[64, 32]"]
    proc = _run(
        [bin_dir / "fastreid-export-caffe", "--config-file", "configs/Synthetic/bagtricks_R18.yml",
         "--name", "demo", "--output", "export", "--verify-batch", "2", *weights],
        cwd=work, env=env,
    )  # fmt: skip
    assert "-> OK" in proc.stdout and (work / "export" / "demo.caffemodel").is_file()
    images = sorted((tmp_path / "datasets").rglob("*.jpg"))[:3]
    assert images
    _run(
        [bin_dir / "fastreid-extract", "--checkpoint", "run", "--input", *images,
         "--output", "feats.npy"],
        cwd=work, env=env,
    )  # fmt: skip
    assert (work / "feats.txt").read_text().splitlines() == [str(p) for p in images]

    # A project recipe whose _BASE_ climbs to the core configs (../../../configs/...) loads too.
    code = (
        "from fastreid.config import CfgNode, get_config_file;"
        "path = get_config_file('projects/FastDistill/configs/Base-kd.yml'); print(path);"
        "m = CfgNode.load_yaml_with_base(path)['MODEL'];"
        "print(m['BACKBONE']['NAME'], m['HEADS']['CLS_LAYER'])"
    )
    out = _run([bin_dir / "python", "-c", code], cwd=work, env=env).stdout
    assert "fastreid_projects/FastDistill/configs/Base-kd.yml" in out
    # Base-kd.yml's own key, merged over its _BASE_ (the core Base-SBS.yml, found installed)
    assert "build_resnet_backbone_distill CircleSoftmax" in out
    assert "fastreid_projects/FastDistill/configs/Base-kd.yml" in out


def test_wheel_reports_a_missing_config_in_one_line(venv, tmp_path):
    proc = subprocess.run(
        [venv / "bin" / "fastreid-train", "--config-file", "configs/Market1501/bagtrick_R50.yml"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Market1501/bagtricks_R50.yml" in error[0], proc.stderr
    assert "Traceback" not in proc.stderr
