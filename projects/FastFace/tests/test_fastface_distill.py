"""A FastFace model as a distillation teacher and as a Distiller student (FaceHead logits)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.utils.checkpoint import Checkpointer
from projects.FastFace.fastface import add_face_config

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "synthetic_r18_cpu.yml")
CLASSES = 5


def face_cfg(*opts):
    cfg = add_face_config(get_cfg())
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(
        [
            "MODEL.BACKBONE.DEPTH", "18x-w4",
            "MODEL.BACKBONE.FEAT_DIM", "512",  # 32 channels x 4 x 4 at 56x56
            "MODEL.HEADS.EMBEDDING_DIM", "16",
            "MODEL.HEADS.NUM_CLASSES", str(CLASSES),
            "MODEL.HEADS.PFC.ENABLED", "False",
            *opts,
        ]
    )  # fmt: skip
    return cfg


def save_teacher(folder, *opts):
    """A face teacher's output folder: config.yaml and model_final.pth."""
    cfg = face_cfg(*opts)
    torch.manual_seed(1)
    teacher = build_model(cfg)
    with torch.no_grad():  # a BN with non-trivial running statistics, as after training
        for m in teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    os.makedirs(folder, exist_ok=True)
    (folder / "config.yaml").write_text(cfg.dump())
    Checkpointer(teacher, save_dir=str(folder)).save("model_final")
    return teacher, str(folder / "config.yaml"), str(folder / "model_final.pth")


def distilled_student(config, weights):
    """A face student (Distiller) of the teacher in ``config`` / ``weights``, in training mode."""
    student = build_model(
        face_cfg(
            "MODEL.META_ARCHITECTURE", "Distiller",
            "KD.MODEL_CONFIG", config,
            "KD.MODEL_WEIGHTS", weights,
        )
    )  # fmt: skip
    return student.train()


def test_face_teacher_gives_margin_free_cosface_logits_to_a_face_student(tmp_path):
    teacher_ref, config, weights = save_teacher(tmp_path / "teacher")
    student = distilled_student(config, weights)
    images = torch.rand((4, 3, 56, 56), generator=torch.Generator().manual_seed(0)) * 255
    batch = {"images": images, "targets": torch.tensor([0, 1, 2, 3])}

    (teacher,) = student.teachers()
    assert not teacher.training and type(teacher).__name__ == "FaceBaseline"
    logits = student.teacher_logits(batch)[0]
    # By hand: the eval embedding's cosine to each class centre, times the CosFace scale,
    # with no margin (the margin only shifts the target logit in training).
    teacher_ref.eval()
    with torch.no_grad():
        embedding = teacher_ref(images)
        centres = teacher_ref.heads.weight
    expected = F.normalize(embedding) @ F.normalize(centres).t() * 32.0
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)

    losses = student(batch)
    assert losses["loss_jsdiv"].item() > 0 and torch.isfinite(losses["loss_jsdiv"])
    sum(losses.values()).backward()
    assert student.backbone.conv1.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def test_a_partial_fc_face_teacher_is_refused_with_the_fix(tmp_path):
    _, config, weights = save_teacher(tmp_path / "teacher", "MODEL.HEADS.PFC.ENABLED", "True")
    student = distilled_student(config, weights)
    batch = {"images": torch.rand((2, 3, 56, 56)) * 255, "targets": torch.tensor([0, 1])}
    with pytest.raises(ValueError, match="no classifier .*PFC.ENABLED False"):
        student(batch)
