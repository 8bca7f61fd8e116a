"""FastDistill end to end: FastReID's own teacher files, the README commands, precise BN."""

import json
import os

import pytest
import torch

import projects.FastDistill.fastdistill  # noqa: F401 - registers the backbone
from fastreid.config import get_cfg
from fastreid.engine import default_argument_parser
from fastreid.engine.cli import setup
from fastreid.modeling import build_model
from fastreid.utils.precision_bn import bn_statistics_pass
from tests.modeling.fastreid_parity import golden_state_dict

from .test_fastdistill_golden import GOLDEN

HERE = os.path.dirname(__file__)
CONFIGS = os.path.join(HERE, "..", "configs")


@pytest.fixture(scope="module")
def fastreid_teacher(tmp_path_factory):
    """A FastReID output folder: its config.yaml and a model_best.pth under FastReID's names."""
    with open(GOLDEN) as f:
        golden = json.load(f)
    folder = tmp_path_factory.mktemp("r34_teacher")
    (folder / "config.yaml").write_text(golden["config_yaml"])
    torch.save({"model": golden_state_dict(golden)}, folder / "model_best.pth")
    return golden, str(folder / "config.yaml"), str(folder / "model_best.pth")


def _student_cfg(arch, config, weights, classes=751):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, "Synthetic", "sbs_r18.yml"))
    cfg.merge_from_list(
        [
            "MODEL.META_ARCHITECTURE", arch,
            "MODEL.HEADS.NUM_CLASSES", str(classes),
            "KD.MODEL_CONFIG", config,
            "KD.MODEL_WEIGHTS", weights,
        ]
    )  # fmt: skip
    return cfg


def test_a_fastreid_trained_teacher_gives_fastreids_features_and_logits(fastreid_teacher):
    golden, config, weights = fastreid_teacher
    torch.manual_seed(0)
    model = build_model(_student_cfg("DistillerOverhaul", config, weights))
    model.train()
    (teacher,) = model.teachers()
    assert not teacher.training

    # The teacher built from FastReID's files is FastReID's network (the golden features).
    images = torch.rand((2, 3, 256, 128), generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        out = teacher.head_outputs(images)
    expected = torch.tensor(golden["features"])
    cos = torch.nn.functional.cosine_similarity(out["features"], expected, dim=1)
    assert cos.min().item() >= 0.9999
    # Its logits are the margin-free cosine logits times the scale (64), of 751 classes.
    w = teacher.heads.weight
    ref = torch.nn.functional.linear(
        torch.nn.functional.normalize(out["features"]), torch.nn.functional.normalize(w)
    )
    torch.testing.assert_close(out["pred_class_logits"], 64 * ref, rtol=1e-4, atol=1e-4)

    # An R18 student learns from it: all three losses, finite.
    batch = {
        "images": torch.rand(4, 3, 64, 32) * 255,
        "targets": torch.tensor([0, 0, 5, 5]),
    }
    losses = model(batch)
    assert {"loss_jsdiv", "loss_overhaul"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


def test_fastreids_readme_commands_parse_and_build(fastreid_teacher):
    _, config, weights = fastreid_teacher
    for arch in ("Distiller", "DistillerOverhaul"):
        argv = [
            "--config-file", os.path.join(CONFIGS, "kd-sbs_r101ibn-sbs_r34.yml"),
            "--num-gpus", "4",
            "MODEL.META_ARCHITECTURE", arch,
            "KD.MODEL_CONFIG", config,
            "KD.MODEL_WEIGHTS", weights,
        ]  # fmt: skip
        args = default_argument_parser().parse_args(argv)
        assert args.num_gpus == 4
        cfg = get_cfg()
        cfg.merge_from_file(args.config_file)
        cfg.merge_from_list(args.opts)
        assert cfg.KD.MODEL_CONFIG == [config] and cfg.KD.MODEL_WEIGHTS == [weights]
        assert cfg.SOLVER.AMP.ENABLED  # Base-kd's SOLVER.FP16_ENABLED, FastReID's old name
        cfg.merge_from_list(["MODEL.HEADS.NUM_CLASSES", "751", "MODEL.DEVICE", "cpu"])
        cfg.MODEL.BACKBONE.PRETRAIN = False
        model = build_model(cfg)
        assert type(model).__name__ == arch
        assert model.backbone.stage_channels == [64, 128, 256, 512]


def test_eval_only_setup_of_a_distilled_student_needs_no_teacher(tmp_path):
    args = default_argument_parser().parse_args(
        [
            "--config-file", os.path.join(CONFIGS, "kd-sbs_r101ibn-sbs_r34.yml"),
            "--eval-only",
            "MODEL.DEVICE", "cpu",
            "MODEL.BACKBONE.PRETRAIN", "False",
            "MODEL.HEADS.NUM_CLASSES", "10",
            "OUTPUT_DIR", str(tmp_path),
        ]
    )  # fmt: skip
    cfg = setup(args)
    assert not os.path.exists(cfg.KD.MODEL_WEIGHTS[0])
    model = build_model(cfg)
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 32) * 255).shape == (2, 512)


def test_precise_bn_pass_runs_no_teacher_and_no_ema_update(fastreid_teacher):
    _, config, weights = fastreid_teacher
    cfg = _student_cfg("DistillerOverhaul", config, weights)
    cfg.merge_from_list(["KD.EMA.ENABLED", "True"])
    model = build_model(cfg)
    model.train()
    batch = {"images": torch.rand(4, 3, 64, 32) * 255, "targets": torch.tensor([0, 0, 1, 1])}
    with bn_statistics_pass():
        assert model(batch) == {}
    assert len(model.teachers()) == 1  # the EMA teacher was not created by that pass
    before = model.backbone.bn1.running_mean.clone()
    with bn_statistics_pass():
        model(batch)
    assert not torch.equal(before, model.backbone.bn1.running_mean)  # the student's BN did move
