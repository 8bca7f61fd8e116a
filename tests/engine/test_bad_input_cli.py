"""Bad input, command lines: one error line and exit code 2, in every tool, overrides both ways."""

from __future__ import annotations

import sys

import pytest

from fastreid.config import ConfigKeyError, get_cfg
from fastreid.utils.errors import exit_on_bad_input

from ..bad_input import (
    RECIPE,
    REPO,
    SMALL,
    run_python,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


# -- command lines ---------------------------------------------------------------------------
def test_bad_input_ends_with_one_error_line_and_exit_code_2(capsys, monkeypatch):
    monkeypatch.delenv("FASTREID_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        exit_on_bad_input(get_cfg().merge_from_list, ["SOLVER.BASE_LRR", "0.1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown config key 'SOLVER.BASE_LRR'")
    assert "Traceback" not in err and "FASTREID_DEBUG=1" in err


def test_fastreid_debug_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("FASTREID_DEBUG", "1")
    with pytest.raises(ConfigKeyError):
        exit_on_bad_input(get_cfg().merge_from_list, ["SOLVER.BASE_LRR", "0.1"])


def test_train_net_with_a_typo_prints_one_line_not_a_traceback(tmp_path):
    result = run_python(
        "tools/train_net.py", "--config-file", RECIPE, *SMALL,
        "MODEL.BACKBONE.DEPHT", "18x", "OUTPUT_DIR", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: Unknown config key 'MODEL.BACKBONE.DEPHT'" in result.stderr
    assert "MODEL.BACKBONE.DEPTH" in result.stderr


def test_two_cpu_processes_with_bad_input_exit_with_code_2_instead_of_hanging(
    tmp_path, tiny_reid_root
):
    result = run_python(
        "tools/train_net.py", "--config-file", RECIPE, "--num-gpus", "2", *SMALL,
        "MODEL.BACKBONE.NAME", "build_resnet_bakbone", "OUTPUT_DIR", str(tmp_path / "run"),
        env={"CUDA_VISIBLE_DEVICES": "", "FASTREID_DATASETS": str(tiny_reid_root)},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: No object named 'build_resnet_bakbone'" in result.stderr
    assert "build_resnet_backbone" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_with_a_missing_weights_file_writes_nothing(tmp_path):
    output = tmp_path / "onnx"
    missing = tmp_path / "missing.pth"
    result = run_python(
        "tools/deploy/onnx_export.py", "--config-file", RECIPE, "--output", str(output),
        "--opts", "MODEL.WEIGHTS", str(missing),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"error: MODEL.WEIGHTS '{missing}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_synthetic_generator_with_an_unusable_output_names_the_option(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_python(
        "-m", "fastreid.data.synthetic", "--output", str(blocker / "x"), "--num-ids", "4"
    )
    assert result.returncode == 2, result.stderr
    assert "--output" in result.stderr and str(blocker / "x") in result.stderr
    assert "Traceback" not in result.stderr


def test_visualize_result_with_a_missing_features_file_says_how_to_write_one(tmp_path):
    missing = tmp_path / "features.npz"
    result = run_python(
        "tools/visualize_result.py", "--features", str(missing), "--output", str(tmp_path / "v")
    )
    assert result.returncode == 2, result.stderr
    assert f"'{missing}' (--features) does not exist" in result.stderr
    assert "--save-features" in result.stderr


# -- every tool takes config overrides both ways ----------------------------------------------
def _load_tool(relative: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "tool_" + relative.replace("/", "_")[:-3], REPO / relative
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TOOLS = {
    "tools/deploy/onnx_export.py": ["--config-file", RECIPE],
    "tools/deploy/torchscript_export.py": ["--config-file", RECIPE],
    "tools/deploy/caffe_export.py": ["--config-file", RECIPE],
    "tools/deploy/trt_export.py": ["--config-file", RECIPE],
    "tools/extract_features.py": ["--config-file", RECIPE, "--input", RECIPE, "--output", "x"],
    "tools/visualize_result.py": ["--config-file", RECIPE, "--output", "vis"],
}


@pytest.mark.parametrize("style", ["trailing", "--opts"])
@pytest.mark.parametrize("tool", sorted(_TOOLS))
def test_every_tool_applies_overrides_given_trailing_or_after_opts(tool, style, monkeypatch):
    # A misspelled key must reach the config in both styles (and be named in the error).
    override = ["MODEL.BACKBONE.DEPHT", "18x"]
    argv = _TOOLS[tool] + (override if style == "trailing" else ["--opts", *override])
    monkeypatch.setattr(sys, "argv", [tool, *argv])
    module = _load_tool(tool)
    with pytest.raises(ConfigKeyError, match="MODEL.BACKBONE.DEPHT"):
        module.main(argv) if tool.endswith("visualize_result.py") else module.main()


def test_train_net_parser_merges_trailing_and_opts_overrides():
    from fastreid.engine import default_argument_parser

    args = default_argument_parser().parse_args(
        ["--config-file", RECIPE, "SOLVER.BASE_LR", "0.1", "--opts", "SEED", "3", "--resume"]
    )
    assert args.opts == ["SOLVER.BASE_LR", "0.1", "SEED", "3"] and args.resume
