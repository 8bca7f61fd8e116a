"""The switches back to FastReID's behaviour: KD.TEACHER_NORM student (teachers get the
student's normalised images) and KD.EMA.BUFFERS False (the EMA teacher averages parameters
only)."""

import copy

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.modeling.meta_arch.distiller import Distiller

H, W = 32, 16


def _cfg(arch="Baseline", *opts):
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.DEVICE", "cpu",
            "MODEL.META_ARCHITECTURE", arch,
            "MODEL.BACKBONE.DEPTH", "18x",
            "MODEL.BACKBONE.PRETRAIN", "False",
            "MODEL.BACKBONE.FEAT_DIM", "512",
            "MODEL.HEADS.NUM_CLASSES", "4",
            "MODEL.HEADS.CLS_LAYER", "CircleSoftmax",
            "MODEL.HEADS.SCALE", "64",
            "MODEL.HEADS.NECK_FEAT", "after",
            "MODEL.LOSSES.NAME", "('CrossEntropyLoss',)",
            *opts,
        ]
    )  # fmt: skip
    return cfg


def _batch(n=8):
    g = torch.Generator().manual_seed(0)
    return {
        "images": torch.rand((n, 3, H, W), generator=g) * 255,
        "targets": torch.arange(4).repeat_interleave(n // 4),
    }


def test_defaults_keep_our_behaviour():
    cfg = get_cfg()
    assert cfg.KD.TEACHER_NORM == "own" and cfg.KD.EMA.BUFFERS is True


def _distiller(teacher_norm):
    torch.manual_seed(0)
    student = build_model(_cfg())
    teacher = build_model(_cfg())  # ImageNet PIXEL_MEAN/STD (the core default)
    model = Distiller(
        backbone=student.backbone,
        heads=student.heads,
        pixel_mean=[100.0, 110.0, 120.0],  # the student normalises differently
        pixel_std=[50.0, 60.0, 70.0],
        teachers=[teacher],
        teacher_norm=teacher_norm,
    )
    model.train()
    return model, teacher


def test_teacher_norm_student_gives_teachers_the_students_normalised_images():
    batch = _batch()
    fastreid, teacher = _distiller("student")
    (got,) = fastreid.teacher_logits(batch)
    # Reference: the same teacher without normalisation, fed the student's normalised images.
    plain = copy.deepcopy(teacher).eval()
    plain.pixel_mean.zero_()
    plain.pixel_std.fill_(1.0)
    student_images = (batch["images"] - fastreid.pixel_mean) / fastreid.pixel_std
    with torch.no_grad():
        expected = plain.head_outputs(student_images)["pred_class_logits"]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

    ours, teacher = _distiller("own")
    (own,) = ours.teacher_logits(batch)
    with torch.no_grad():
        own_expected = copy.deepcopy(teacher).eval().head_outputs(batch)["pred_class_logits"]
    torch.testing.assert_close(own, own_expected)
    assert (own - got).abs().max() > 100 * 1e-4  # the switch changes what teachers see
    with pytest.raises(ValueError, match="KD.TEACHER_NORM"):
        Distiller(
            backbone=teacher.backbone, heads=teacher.heads, pixel_mean=[0.0] * 3,
            pixel_std=[1.0] * 3, teachers=[teacher], teacher_norm="theirs",
        )  # fmt: skip


def test_teacher_norm_from_config_reaches_the_overhaul_teachers(tmp_path):
    cfg = _cfg("Distiller", "KD.EMA.ENABLED", "True", "KD.TEACHER_NORM", "student")
    assert build_model(cfg).teacher_norm == "student"


@pytest.mark.parametrize("buffers", [True, False])
def test_ema_buffers_switch(buffers):
    cfg = _cfg(
        "Distiller", "KD.EMA.ENABLED", "True", "KD.EMA.MOMENTUM", "0.9",
        "KD.EMA.BUFFERS", str(buffers),
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    model(_batch())  # the EMA teacher starts as a copy of the student
    ema = model.teachers()[0]
    old_mean = ema.backbone.bn1.running_mean.clone()
    old_weight = ema.backbone.conv1.weight.clone()
    model(_batch())  # the student's BN statistics move in its training forward
    student_mean = model.backbone.bn1.running_mean
    assert not torch.allclose(student_mean, old_mean)
    # Parameters follow the momentum formula either way.
    torch.testing.assert_close(
        ema.backbone.conv1.weight, 0.9 * old_weight + 0.1 * model.backbone.conv1.weight
    )
    if buffers:
        # ours: averaged (from the statistics before this step's forward: the update runs first)
        assert not torch.allclose(ema.backbone.bn1.running_mean, old_mean)
    else:  # FastReID: buffers untouched
        torch.testing.assert_close(ema.backbone.bn1.running_mean, old_mean)
