"""Distiller / DistillerOverhaul: teacher handling, losses, eval without teachers, bad input."""

import math
import os

import pytest
import torch
import torch.nn.functional as F

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from fastreid.modeling.losses import logit_distillation_loss
from fastreid.modeling.meta_arch.distiller import Distiller, margin_from_bn
from fastreid.utils.checkpoint import Checkpointer

H, W = 32, 16


def _cfg(depth="18x", arch="Baseline", classes=4):
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.DEVICE", "cpu",
            "MODEL.META_ARCHITECTURE", arch,
            "MODEL.BACKBONE.DEPTH", depth,
            "MODEL.BACKBONE.PRETRAIN", "False",
            "MODEL.BACKBONE.FEAT_DIM", "512",
            "MODEL.HEADS.NUM_CLASSES", str(classes),
            "MODEL.HEADS.CLS_LAYER", "CircleSoftmax",
            "MODEL.HEADS.SCALE", "64",
            "MODEL.HEADS.MARGIN", "0.35",
            "MODEL.HEADS.NECK_FEAT", "after",
            "MODEL.LOSSES.NAME", "('CrossEntropyLoss',)",
        ]
    )  # fmt: skip
    return cfg


def _save_teacher(folder, depth="18x", classes=4, seed=1):
    """A trained-teacher output folder: config.yaml + model_best.pth (BN stats non-trivial)."""
    torch.manual_seed(seed)
    cfg = _cfg(depth, classes=classes)
    teacher = build_model(cfg)
    with torch.no_grad():
        for name, buf in teacher.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
        for name, p in teacher.named_parameters():
            if p.dim() == 1 and name.endswith("bias"):
                p.normal_(0, 0.3)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    torch.save({"model": teacher.state_dict()}, os.path.join(folder, "model_best.pth"))
    return os.path.join(folder, "config.yaml"), os.path.join(folder, "model_best.pth")


def _student(tmp_path, arch="Distiller", teachers=1, opts=(), teacher_depth="18x"):
    cfg = _cfg("18x", arch)
    configs, weights = [], []
    for i in range(teachers):
        c, w = _save_teacher(str(tmp_path / f"t{i}"), teacher_depth, seed=i + 1)
        configs.append(c)
        weights.append(w)
    cfg.KD.MODEL_CONFIG = configs
    cfg.KD.MODEL_WEIGHTS = weights
    cfg.merge_from_list(list(opts))
    torch.manual_seed(0)
    return build_model(cfg), cfg


def _batch(n=8):
    g = torch.Generator().manual_seed(0)
    return {
        "images": torch.rand((n, 3, H, W), generator=g) * 255,
        "targets": torch.arange(4).repeat_interleave(n // 4),
    }


def _eval_logits(model, images):
    """Margin-free logits of an eval-mode Baseline with a cosine head, computed directly."""
    model.eval()
    with torch.no_grad():
        feat = model(images)
        w = model.heads.weight
        return F.linear(F.normalize(feat), F.normalize(w)) * 64


def test_teachers_are_frozen_eval_and_outside_the_state_dict(tmp_path):
    model, _ = _student(tmp_path)
    model.train()
    (teacher,) = model.teachers()
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert set(model.state_dict()) == set(Baseline_keys(model))
    student_params = {id(p) for p in model.parameters()}
    assert not any(id(p) in student_params for p in teacher.parameters())

    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        loss = sum(model(_batch()).values())
        loss.backward()
        opt.step()
        opt.zero_grad()
        model.train()  # what EvalHook does after evaluating: must not reach the teacher
    assert not teacher.training
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=k)


def Baseline_keys(model):
    return [k for k in model.state_dict() if k.startswith(("backbone.", "heads."))]


def test_jsdiv_is_the_symmetric_kl_of_student_and_eval_teacher_logits(tmp_path):
    model, _ = _student(tmp_path)
    model.train()
    batch = _batch()
    (teacher,) = model.teachers()
    expected_teacher = _eval_logits(teacher, batch["images"])
    losses = model(batch)

    model_copy_logits = model.heads(model.backbone(model.preprocess_image(batch)), batch["targets"])
    expected = logit_distillation_loss(
        model_copy_logits["pred_class_logits"], expected_teacher, 16.0, "symmetric_kl"
    )
    assert losses["loss_jsdiv"].item() == pytest.approx(expected.item(), rel=1e-4)
    assert set(losses) == {"loss_cls", "loss_jsdiv"}


def test_temperature_weight_and_divergence_come_from_config(tmp_path):
    model, _ = _student(
        tmp_path,
        opts=["KD.TEMPERATURE", "4.0", "KD.LOSS_WEIGHT", "0.5", "KD.DIVERGENCE", "kl"],
    )
    model.train()
    batch = _batch()
    t_logits = _eval_logits(model.teachers()[0], batch["images"])
    s_logits = model.heads(model.backbone(model.preprocess_image(batch)), batch["targets"])
    expected = 0.5 * logit_distillation_loss(s_logits["pred_class_logits"], t_logits, 4.0, "kl")
    assert model(batch)["loss_kl"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_several_teachers_average_their_losses(tmp_path):
    model, _ = _student(tmp_path, teachers=2)
    model.train()
    batch = _batch()
    s_logits = model.heads(model.backbone(model.preprocess_image(batch)), batch["targets"])
    per_teacher = [
        logit_distillation_loss(s_logits["pred_class_logits"], _eval_logits(t, batch["images"]))
        for t in model.teachers()
    ]
    assert len(per_teacher) == 2 and per_teacher[0].item() != pytest.approx(per_teacher[1].item())
    expected = sum(per_teacher) / 2
    assert model(batch)["loss_jsdiv"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_teacher_train_mode_is_fastreids_behaviour(tmp_path):
    model, _ = _student(tmp_path, opts=["KD.TEACHER_MODE", "train"])
    model.train()
    teacher = model.teachers()[0]
    before = teacher.backbone.bn1.running_mean.clone()
    model(_batch())
    assert teacher.training  # batch statistics, running statistics drift
    assert not torch.allclose(before, teacher.backbone.bn1.running_mean)


def test_ema_teacher_follows_the_momentum_formula(tmp_path):
    cfg = _cfg("18x", "Distiller")
    cfg.merge_from_list(["KD.EMA.ENABLED", "True", "KD.EMA.MOMENTUM", "0.9"])
    model = build_model(cfg)
    model.train()
    model(_batch())  # first step: the EMA teacher starts as a copy of the student
    ema = model.teachers()[0]
    torch.testing.assert_close(ema.backbone.conv1.weight, model.backbone.conv1.weight)
    old = ema.backbone.conv1.weight.clone()
    with torch.no_grad():
        model.backbone.conv1.weight.add_(1.0)
    model(_batch())
    torch.testing.assert_close(
        ema.backbone.conv1.weight, 0.9 * old + 0.1 * model.backbone.conv1.weight
    )
    assert not any("ema" in k for k in model.state_dict())


def test_eval_only_needs_no_teacher_files(tmp_path):
    model, cfg = _student(tmp_path, arch="DistillerOverhaul")
    model.train()
    model(_batch())
    path = tmp_path / "student.pth"
    torch.save({"model": model.state_dict()}, path)
    for f in cfg.KD.MODEL_CONFIG + cfg.KD.MODEL_WEIGHTS:
        os.remove(f)

    fresh = build_model(cfg)  # teacher files are gone: building still works
    incompatible = Checkpointer(fresh).load_model_state(torch.load(path)["model"])
    assert not incompatible, incompatible.table()  # connectors sized from the checkpoint
    fresh.eval()
    model.eval()
    images = _batch()["images"]
    torch.testing.assert_close(fresh(images), model(images))
    fresh.train()  # what evaluation does afterwards: still no teacher needed
    with pytest.raises(FileNotFoundError, match="KD.MODEL_WEIGHTS"):
        fresh(_batch())


def test_overhaul_loss_uses_teacher_bn_margins_and_trains_connectors(tmp_path):
    model, _ = _student(tmp_path, arch="DistillerOverhaul", teacher_depth="34x")
    model.train()
    losses = model(_batch())
    assert set(losses) == {"loss_cls", "loss_jsdiv", "loss_overhaul"}
    teacher = model.teachers()[0]
    for j, bn in enumerate(teacher.backbone.get_bn_before_relu(), start=1):
        torch.testing.assert_close(getattr(model, f"margin0_{j}"), margin_from_bn(bn))
    losses["loss_overhaul"].backward()
    assert model.connectors[0][3][0].weight.grad.abs().sum() > 0
    assert model.backbone.layer1[0].conv1.weight.grad.abs().sum() > 0


def _expected_negative_part(m, s, steps=200000):
    """E[x | x < 0] for x ~ N(m, s^2), by numerical integration over (-inf, 0)."""
    lo = min(m, 0.0) - 12 * s
    dx = -lo / steps
    num = den = 0.0
    for i in range(steps):
        x = lo + (i + 0.5) * dx
        p = math.exp(-((x - m) ** 2) / (2 * s * s))
        num += x * p
        den += p
    return num / den


def test_margin_is_the_expected_negative_response():
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -0.5, 0.2]))
        bn.bias.copy_(torch.tensor([0.0, 0.3, 2.0]))  # the last one: Phi(-10) < 0.001
    margin = margin_from_bn(bn).flatten()
    assert margin.shape == (3,)
    assert margin[0].item() == pytest.approx(_expected_negative_part(0.0, 1.0), rel=1e-4)
    assert margin[1].item() == pytest.approx(_expected_negative_part(0.3, 0.5), rel=1e-4)
    assert margin[2].item() == pytest.approx(-3 * 0.2, rel=1e-6)


def test_distillation_lowers_the_kd_loss_on_a_fixed_batch(tmp_path):
    model, _ = _student(tmp_path, arch="DistillerOverhaul")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = _batch()
    first = None
    for _ in range(5):
        losses = model(batch)
        first = first or {k: v.item() for k, v in losses.items()}
        sum(losses.values()).backward()
        opt.step()
        opt.zero_grad()
    last = model(batch)
    assert last["loss_jsdiv"].item() < first["loss_jsdiv"]
    assert last["loss_overhaul"].item() < first["loss_overhaul"]


# -- bad input -------------------------------------------------------------------------------
def test_config_and_weight_lists_of_different_lengths(tmp_path):
    cfg = _cfg(arch="Distiller")
    cfg.KD.MODEL_CONFIG = ["a.yaml", "b.yaml"]
    cfg.KD.MODEL_WEIGHTS = ["a.pth"]
    with pytest.raises(
        ValueError, match="KD.MODEL_CONFIG has 2 entries but KD.MODEL_WEIGHTS has 1"
    ):
        build_model(cfg)


def test_missing_teacher_files_are_named(tmp_path):
    c, w = _save_teacher(str(tmp_path / "t"))
    for config, weights, key in (
        (c, str(tmp_path / "nope.pth"), "KD.MODEL_WEIGHTS"),
        (str(tmp_path / "nope.yaml"), w, "KD.MODEL_CONFIG"),
    ):
        cfg = _cfg(arch="Distiller")
        cfg.KD.MODEL_CONFIG = [config]
        cfg.KD.MODEL_WEIGHTS = [weights]
        model = build_model(cfg)
        with pytest.raises(FileNotFoundError, match=key):
            model.load_teachers()


def test_teacher_with_another_class_count(tmp_path):
    c, w = _save_teacher(str(tmp_path / "t"), classes=7)
    cfg = _cfg(arch="Distiller")
    cfg.KD.MODEL_CONFIG, cfg.KD.MODEL_WEIGHTS = [c], [w]
    model = build_model(cfg)
    with pytest.raises(ValueError, match="7 classes but the student has 4"):
        model(_batch())


def test_overhaul_needs_pre_relu_stage_features(tmp_path):
    c, w = _save_teacher(str(tmp_path / "t"))
    cfg = _cfg(arch="DistillerOverhaul")
    cfg.merge_from_list(
        ["MODEL.BACKBONE.NAME", "build_osnet_backbone", "MODEL.BACKBONE.DEPTH", "x0_25"]
    )
    cfg.MODEL.BACKBONE.FEAT_DIM = 128
    cfg.KD.MODEL_CONFIG, cfg.KD.MODEL_WEIGHTS = [c], [w]
    with pytest.raises(ValueError, match="no pre-ReLU stage features"):
        build_model(cfg)


def test_distiller_without_any_teacher():
    with pytest.raises(ValueError, match="KD.MODEL_CONFIG"):
        build_model(_cfg(arch="Distiller"))


def test_python_door_takes_teacher_modules():
    torch.manual_seed(0)
    student = build_model(_cfg())
    teacher = build_model(_cfg())
    model = Distiller(
        backbone=student.backbone,
        heads=student.heads,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[1.0, 1.0, 1.0],
        teachers=[teacher],
        temperature=8.0,
    )
    model.train()
    assert model.teachers() == [teacher] and not teacher.training
    assert "loss_jsdiv" in model(_batch())


def test_teacher_checkpoint_of_another_architecture(tmp_path):
    c, _ = _save_teacher(str(tmp_path / "t18"), depth="18x")
    _, w34 = _save_teacher(str(tmp_path / "t34"), depth="34x")
    cfg = _cfg(arch="Distiller")
    cfg.KD.MODEL_CONFIG, cfg.KD.MODEL_WEIGHTS = [c], [w34]
    model = build_model(cfg)
    with pytest.raises(ValueError, match="t34"):
        model.load_teachers()


def test_a_distilled_student_can_teach(tmp_path):
    """A distilled teacher's config says Distiller: it is built as the student alone."""
    model, cfg = _student(tmp_path)
    model.train()
    model(_batch())
    folder = tmp_path / "distilled"
    folder.mkdir()
    (folder / "config.yaml").write_text(cfg.dump())
    torch.save({"model": model.state_dict()}, folder / "model_best.pth")
    cfg2 = _cfg(arch="Distiller")
    cfg2.KD.MODEL_CONFIG = [str(folder / "config.yaml")]
    cfg2.KD.MODEL_WEIGHTS = [str(folder / "model_best.pth")]
    (teacher,) = build_model(cfg2).load_teachers()
    assert type(teacher).__name__ == "Baseline"
    model.eval()
    images = _batch()["images"]
    torch.testing.assert_close(teacher(images), model(images))
