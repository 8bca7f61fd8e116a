"""FastReID's command line and the CPU fallback of MODEL.DEVICE."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastreid.engine import default_argument_parser, resolve_device


def test_parser_takes_fastreid_flags_and_key_value_overrides():
    args = default_argument_parser().parse_args(
        "--config-file c.yml --num-gpus 2 --num-machines 2 --machine-rank 1 "
        "--dist-url tcp://10.0.0.1:29500 --eval-only SOLVER.BASE_LR 0.1 --resume".split()
    )
    assert (args.config_file, args.num_gpus, args.num_machines, args.machine_rank) == (
        "c.yml",
        2,
        2,
        1,
    )
    assert args.dist_url == "tcp://10.0.0.1:29500"
    assert args.eval_only and args.resume  # also when given after the overrides
    assert args.opts == ["SOLVER.BASE_LR", "0.1"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback only happens without a GPU")
def test_cuda_device_falls_back_to_cpu_without_a_gpu():
    assert resolve_device("cuda") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")


def test_console_script_reports_bad_input_in_one_line(tmp_path, capsys):
    from fastreid.engine.cli import eval_main

    not_a_checkpoint = tmp_path / "notes.pth"
    not_a_checkpoint.write_text("hello\n")
    with pytest.raises(SystemExit) as exit_info:
        eval_main(
            [
                "--config-file",
                str(Path(__file__).resolve().parents[2] / "configs/Synthetic/bagtricks_R18.yml"),
                "MODEL.WEIGHTS",
                str(not_a_checkpoint),
                "OUTPUT_DIR",
                str(tmp_path / "out"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: Could not read checkpoint '{not_a_checkpoint}'")
    assert "Traceback" not in err


def test_a_project_trainer_adds_its_keys_and_owns_eval_only(tmp_path):
    """cli.main: ``trainer_cls.add_config`` runs before the file and the overrides are
    merged, and ``--eval-only`` is ``trainer_cls.evaluate_weights``."""
    from fastreid.config import CfgNode
    from fastreid.engine import DefaultTrainer
    from fastreid.engine.cli import main

    class ProjectTrainer(DefaultTrainer):
        seen = []

        @classmethod
        def add_config(cls, cfg):
            cfg.PROJECT = CfgNode()
            cfg.PROJECT.ALPHA = 1.0

        @classmethod
        def evaluate_weights(cls, cfg):
            cls.seen.append(cfg)
            return {"metric": cfg.PROJECT.ALPHA}

    recipe = Path(__file__).resolve().parents[2] / "configs/Synthetic/bagtricks_R18.yml"
    args = default_argument_parser().parse_args(
        ["--config-file", str(recipe), "--eval-only", "PROJECT.ALPHA", "2.5"]
        + ["OUTPUT_DIR", str(tmp_path / "out")]
    )
    assert main(args, ProjectTrainer) == {"metric": 2.5}
    assert ProjectTrainer.seen[0].is_frozen()
    # The core trainer does not know the key: one clear KeyError naming it.
    with pytest.raises(KeyError, match="PROJECT"):
        main(args, DefaultTrainer)


def test_root_flag_sets_the_datasets_folder_and_an_explicit_key_wins(tmp_path):
    from fastreid.engine.cli import setup

    recipe = str(Path(__file__).resolve().parents[2] / "configs/Synthetic/bagtricks_R18.yml")
    common = ["--config-file", recipe, "--root", str(tmp_path / "data")]
    cfg = setup(default_argument_parser().parse_args(common + ["OUTPUT_DIR", str(tmp_path / "a")]))
    assert cfg.DATASETS.ROOT == str(tmp_path / "data")
    args = default_argument_parser().parse_args(
        common + ["DATASETS.ROOT", "elsewhere", "OUTPUT_DIR", str(tmp_path / "b")]
    )
    assert setup(args).DATASETS.ROOT == "elsewhere"
