"""Distillation under DDP: two gloo processes train a student from a teacher file."""

import os
import subprocess
import sys

import pytest
import torch

import projects.FastDistill.fastdistill  # noqa: F401 - registers the backbone
from fastreid.config import get_cfg
from fastreid.modeling import build_model

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PROJECT))


def _tiny_cfg(root, output_dir, arch, depth="18x"):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(PROJECT, "configs", "Synthetic", "sbs_r18.yml"))
    cfg.merge_from_list(
        [
            "DATASETS.ROOT", root,
            "OUTPUT_DIR", output_dir,
            "MODEL.META_ARCHITECTURE", arch,
            "MODEL.BACKBONE.DEPTH", depth,
            "INPUT.SIZE_TRAIN", "[32, 16]",
            "INPUT.SIZE_TEST", "[32, 16]",
            "SOLVER.IMS_PER_BATCH", "16",
            "SOLVER.MAX_EPOCH", "2",
            "SOLVER.DELAY_EPOCHS", "0",
            "SOLVER.WARMUP_ITERS", "1",
            "SOLVER.CHECKPOINT_PERIOD", "2",
            "TEST.EVAL_PERIOD", "2",
            "DATALOADER.NUM_WORKERS", "0",
        ]
    )  # fmt: skip
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["DistillerOverhaul"])
def test_two_gloo_processes_distill_and_save_only_the_student(tmp_path, arch):
    from fastreid.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path / "datasets")
    generate_synthetic_dataset(root, num_ids=16, seed=0, height=32, width=16, num_cams=3)

    # A teacher output folder (8 training identities, as the student sees).
    teacher_cfg = _tiny_cfg(root, str(tmp_path / "teacher"), "Baseline", depth="34x")
    teacher_cfg.MODEL.HEADS.NUM_CLASSES = 8
    torch.manual_seed(0)
    teacher = build_model(teacher_cfg)
    os.makedirs(tmp_path / "teacher")
    (tmp_path / "teacher" / "config.yaml").write_text(teacher_cfg.dump())
    torch.save({"model": teacher.state_dict()}, tmp_path / "teacher" / "model_best.pth")

    out = tmp_path / "student"
    cfg = _tiny_cfg(root, str(out), arch)
    cfg.KD.MODEL_CONFIG = [str(tmp_path / "teacher" / "config.yaml")]
    cfg.KD.MODEL_WEIGHTS = [str(tmp_path / "teacher" / "model_best.pth")]
    config_file = tmp_path / "kd.yml"
    config_file.write_text(cfg.dump())

    env = dict(os.environ, FASTREID_PROGRESS="0", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(PROJECT, "train_net.py"),
            "--config-file",
            str(config_file),
            "--num-gpus",
            "2",
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,  # generous: a loaded machine runs this many times slower
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "World size: 2" in log and "loss_overhaul" in log and "loss_jsdiv" in log

    # The checkpoint holds the student (with its connectors), never the teacher.
    state = torch.load(out / "model_final.pth", weights_only=True)["model"]
    assert not any(k.startswith(("teacher", "ema_teacher", "module.")) for k in state)
    assert "connectors.0.3.0.weight" in state and "margin0_4" in state
    # Both ranks trained the same student: the saved weights differ from the initial ones,
    # and the teacher file is untouched.
    teacher_after = torch.load(tmp_path / "teacher" / "model_best.pth", weights_only=True)["model"]
    torch.testing.assert_close(teacher_after, teacher.state_dict())

    # --eval-only of the distilled student, the teacher files gone.
    from fastreid.engine import default_argument_parser
    from fastreid.engine.cli import main

    os.remove(tmp_path / "teacher" / "model_best.pth")
    os.remove(tmp_path / "teacher" / "config.yaml")
    args = default_argument_parser().parse_args(
        [
            "--config-file", str(config_file), "--eval-only",
            "MODEL.WEIGHTS", str(out / "model_final.pth"),
            "OUTPUT_DIR", str(tmp_path / "eval"),
        ]
    )  # fmt: skip
    results = main(args)
    assert 0.0 <= results["mAP"] <= 100.0
