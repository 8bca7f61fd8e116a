"""Knowledge distillation: ``Distiller`` (logit KD) and ``DistillerOverhaul`` (logit + feature KD).

A student ``Baseline`` learns from frozen teachers, given as FastReID does it: a list of
teacher configs (``KD.MODEL_CONFIG``) and checkpoints (``KD.MODEL_WEIGHTS``), plus optionally
an exponential-moving-average copy of the student itself (``KD.EMA``).

How teachers are held (and why):

* they are attached with the core's ``add_frozen_model``: not submodules, so ``state_dict()``,
  checkpoints, ``parameters()`` (so the optimizer and DDP's gradient sync) and
  ``model.train()`` never reach them, while ``model.to()`` moves them;
* they are loaded at the first training step (or an explicit :meth:`Distiller.load_teachers`),
  not when the model is built, so evaluating a distilled student (``--eval-only``, whose
  evaluation also switches the model back to training mode) needs no teacher files;
* they run under ``no_grad`` in eval mode (``KD.TEACHER_MODE eval``; FastReID's teachers
  stay in train mode, kept as ``KD.TEACHER_MODE train``), inside the student's autocast;
* each normalises the raw images with its own ``MODEL.PIXEL_MEAN/STD`` (``KD.TEACHER_NORM
  own``; FastReID hands every teacher the student's normalised images, ``KD.TEACHER_NORM
  student``).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from fastreid.config import CfgNode, configurable, get_cfg
from fastreid.modeling.losses.distill_loss import (
    DIVERGENCES,
    logit_distillation_loss,
    overhaul_distillation_loss,
)
from fastreid.utils.precision_bn import in_bn_statistics_pass

from ..protocols import STAGE_FEATURE_MEMBERS, missing_members
from .baseline import Baseline, BatchedInputs
from .build import META_ARCH_REGISTRY

__all__ = [
    "Distiller",
    "DistillerOverhaul",
    "TEACHER_MODES",
    "build_teacher_config",
    "load_teacher",
    "margin_from_bn",
    "pre_relu_stage_support",
    "stage_features",
]

logger = logging.getLogger(__name__)

TEACHER_MODES = ("eval", "train")
TEACHER_NORMS = ("own", "student")
# loss dict key of each KD.DIVERGENCE (FastReID logs the symmetric KL as loss_jsdiv).
_LOSS_KEYS = {"symmetric_kl": "loss_jsdiv", "js": "loss_js", "kl": "loss_kl"}

TeacherSource = Union[nn.Module, Callable[[], nn.Module]]


# -- teachers from config files ------------------------------------------------------------
def _add_missing_keys(dst: CfgNode, src: CfgNode) -> None:
    """Give ``dst`` the keys of ``src`` it lacks (project keys such as FastFace's)."""
    for key, value in src.items():
        if key not in dst:
            dst[key] = copy.deepcopy(value)
        elif isinstance(value, CfgNode) and isinstance(dst[key], CfgNode):
            _add_missing_keys(dst[key], value)


def build_teacher_config(config_file: str, student_cfg: Optional[CfgNode] = None) -> CfgNode:
    """The config a teacher is built from: the defaults (plus any project keys the student's
    config has), merged with ``config_file``, then made fit for a frozen teacher: a distilled
    teacher becomes a ``Baseline`` (it does not load teachers of its own; other meta-archs such
    as a project's face model stay as they are),
    syncBN -> BN, no ImageNet pretrain, no KD, the student's device.
    """
    if not os.path.isfile(config_file):
        raise FileNotFoundError(
            f"Teacher config '{config_file}' (KD.MODEL_CONFIG) does not exist. Give the "
            "config.yaml of the trained teacher's output folder."
        )
    cfg = get_cfg()
    if student_cfg is not None:
        _add_missing_keys(cfg, student_cfg)
    cfg.merge_from_file(config_file)
    arch = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    if isinstance(arch, type) and issubclass(arch, Distiller):
        cfg.MODEL.META_ARCHITECTURE = "Baseline"  # the trained student alone
    for node in (cfg.MODEL.BACKBONE, cfg.MODEL.HEADS):
        if str(node.NORM).lower() == "syncbn":
            node.NORM = "BN"
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.WEIGHTS = ""
    cfg.KD.MODEL_CONFIG = []
    cfg.KD.MODEL_WEIGHTS = []
    cfg.KD.EMA.ENABLED = False
    if student_cfg is not None:
        cfg.MODEL.DEVICE = student_cfg.MODEL.DEVICE
    return cfg


def load_teacher(
    config_file: str,
    weights_file: str,
    student_cfg: Optional[CfgNode] = None,
    num_classes: Optional[int] = None,
) -> nn.Module:
    """Build a teacher from its config and checkpoint (a FastReID or fastreid output folder's
    ``config.yaml`` and ``model_best.pth``), frozen and in eval mode.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` when the checkpoint does not
    fill the teacher's weights or its class count differs from ``num_classes``.
    """
    from fastreid.modeling.compat import num_classes_in_checkpoint
    from fastreid.utils.checkpoint import Checkpointer, load_checkpoint_file

    from .build import build_model

    if not os.path.isfile(weights_file):
        raise FileNotFoundError(
            f"Teacher weights '{weights_file}' (KD.MODEL_WEIGHTS) do not exist. Give the "
            "model_best.pth / model_final.pth of the trained teacher."
        )
    cfg = build_teacher_config(config_file, student_cfg)
    if int(cfg.MODEL.HEADS.NUM_CLASSES) == 0:
        cfg.MODEL.HEADS.NUM_CLASSES = num_classes_in_checkpoint(weights_file)
    teacher_classes = int(cfg.MODEL.HEADS.NUM_CLASSES)
    if num_classes is not None and teacher_classes != int(num_classes):
        raise ValueError(
            f"The teacher '{config_file}' has {teacher_classes} classes but the student has "
            f"{num_classes}: logit distillation compares class distributions, so teacher and "
            "student must be trained on the same identities (the same DATASETS.NAMES)."
        )
    teacher = build_model(cfg)
    state = load_checkpoint_file(weights_file)["model"]
    incompatible = Checkpointer(teacher).load_model_state(state, source=weights_file)
    # Extra backbone/head weights mean another architecture (a deeper ResNet shares the
    # shallower one's names); a distilled teacher's connectors are fine.
    foreign = [k for k in incompatible.unexpected_keys if k.startswith(("backbone.", "heads."))]
    if incompatible.missing_keys or incompatible.shape_mismatches or foreign:
        raise ValueError(
            f"The teacher checkpoint '{weights_file}' does not fill the model of "
            f"'{config_file}':\n{incompatible.table()}\nKD.MODEL_WEIGHTS[i] must be the weights "
            "trained with KD.MODEL_CONFIG[i]."
        )
    teacher.requires_grad_(False)
    teacher.eval()
    logger.info(
        f"Loaded teacher {cfg.MODEL.BACKBONE.NAME} {cfg.MODEL.BACKBONE.DEPTH} from {weights_file}"
    )
    return teacher


def _teacher_stage_channels(config_file: str, student_cfg: CfgNode) -> Optional[List[int]]:
    """Stage channels of the teacher's backbone, built without weights on the meta device;
    ``None`` when the teacher config cannot be read now (e.g. evaluation without teacher files)."""
    from fastreid.modeling.backbones import build_backbone

    try:
        cfg = build_teacher_config(config_file, student_cfg)
        with torch.device("meta"):
            backbone = build_backbone(cfg)
    except Exception as e:  # noqa: BLE001 - reported again, as an error, when training starts
        logger.debug(f"Teacher config '{config_file}' not readable now: {e}")
        return None
    reason = pre_relu_stage_support(backbone)
    if reason is not None:
        raise ValueError(f"DistillerOverhaul: the teacher of '{config_file}' {reason}")
    return list(backbone.stage_channels)


# -- heads and backbones, as distillation sees them ----------------------------------------
def head_logits(
    heads: nn.Module, features: torch.Tensor, targets: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Margin-free class logits times the head's scale (``pred_class_logits``), ``(B, C)``,
    from a head in either mode (a training head needs ``targets``)."""
    if heads.training:
        return heads(features, targets)["pred_class_logits"]
    return heads(features, with_logits=True)["pred_class_logits"]


def pre_relu_stage_support(backbone: nn.Module) -> Optional[str]:
    """``None`` when ``backbone`` gives pre-ReLU stage features for overhaul distillation:
    ``forward_stages(x)`` (pre-ReLU stage outputs whose ReLU is the backbone's output),
    ``get_bn_before_relu()`` and ``stage_channels``; otherwise the reason it does not."""
    missing = missing_members(backbone, STAGE_FEATURE_MEMBERS)
    if missing:
        return (
            f"({type(backbone).__name__}) gives no pre-ReLU stage features (it lacks "
            f"{', '.join(missing)}); use a backbone that provides them (a ResNet-family "
            "backbone does), or MODEL.META_ARCHITECTURE Distiller (logits only)."
        )
    positions = getattr(backbone, "nl_positions", None)
    if positions:
        depths = [len(getattr(backbone, f"layer{i}")) for i in range(1, len(positions) + 1)]
        if any(p and p[-1] == d - 1 for p, d in zip(positions, depths)):
            return (
                "ends a stage with a non-local block, so its stage outputs are not pre-ReLU; "
                "set MODEL.BACKBONE.WITH_NL False."
            )
    return None


def stage_features(
    backbone: nn.Module, images: torch.Tensor
) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """``([pre-ReLU stage features], output feature map)`` in one backbone pass."""
    if hasattr(backbone, "extract_feature"):
        stages, out = backbone.extract_feature(images, pre_relu=True)
        return list(stages), out
    stages = backbone.forward_stages(images)
    return list(stages), F.relu(stages[-1])


def margin_from_bn(bn: nn.Module) -> torch.Tensor:
    """Per-channel margin ``(1, C, 1, 1)`` of overhaul distillation from the BN before a ReLU.

    The BN output of a channel is modelled as ``N(beta, |gamma|^2)``; the margin is the
    expectation of its negative part, ``E[x | x < 0] = m - s * phi(m/s) / Phi(-m/s)``, or
    ``-3 s`` where negatives are too rare (``Phi(-m/s) <= 0.001``) for that to be stable.
    """
    s = bn.weight.detach().abs().double().clamp_min(1e-12)
    m = bn.bias.detach().double()
    cdf = 0.5 * (1.0 + torch.erf(-m / s / math.sqrt(2.0)))  # Phi(-m/s)
    pdf = torch.exp(-((m / s) ** 2) / 2) / math.sqrt(2 * math.pi)
    expected = m - s * pdf / cdf.clamp_min(1e-300)
    margin = torch.where(cdf > 0.001, expected, -3 * s)
    return margin.float().view(1, -1, 1, 1).to(bn.weight.device)


def build_connector(student_channels: int, teacher_channels: int) -> nn.Sequential:
    """1x1 conv (no bias) + BN mapping a student stage onto the teacher's channels."""
    conv = nn.Conv2d(student_channels, teacher_channels, 1, bias=False)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / teacher_channels))
    bn = nn.BatchNorm2d(teacher_channels)
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    return nn.Sequential(conv, bn)


# -- the meta-architectures ----------------------------------------------------------------
@META_ARCH_REGISTRY.register()
class Distiller(Baseline):
    """A student :class:`Baseline` trained with logit distillation from frozen teachers.

    Training: the Baseline losses plus ``loss_jsdiv`` (``loss_js`` / ``loss_kl`` for the other
    divergences): ``weight * mean over teachers of divergence(student, teacher)`` on the
    margin-free logits (``pred_class_logits``) at temperature ``T``. Eval: the student alone,
    exactly as ``Baseline``.

    Args (besides Baseline's):
        teachers: frozen teacher models (Baseline-like: ``backbone``, ``heads``,
            ``preprocess_image``), or zero-argument callables that build one; callables run
            when training starts.
        ema_momentum: add an EMA copy of the student as the first teacher (``None``: off);
            ``p_ema = m * p_ema + (1 - m) * p_student`` before each step, for the parameters
            and (``ema_buffers``) the float buffers; it starts as a copy of the student at
            its first training step.
        ema_buffers: also average the float buffers (BN statistics) into the EMA teacher;
            False is FastReID's behaviour (parameters only, buffers keep the first copy's).
        teacher_norm: ``"own"`` (each teacher normalises the raw images with its own
            PIXEL_MEAN/STD) or ``"student"`` (FastReID: teachers get the student's
            normalised images).
        temperature, kd_weight, divergence: see ``logit_distillation_loss``.
        teacher_mode: ``"eval"`` (frozen BN statistics) or ``"train"`` (batch statistics,
            running statistics drift: FastReID's behaviour).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        heads: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        loss_kwargs: Optional[Dict[str, Any]] = None,
        teachers: Sequence[TeacherSource] = (),
        ema_momentum: Optional[float] = None,
        temperature: float = 16.0,
        kd_weight: float = 1.0,
        divergence: str = "symmetric_kl",
        teacher_mode: str = "eval",
        ema_buffers: bool = True,
        teacher_norm: str = "own",
    ) -> None:
        super().__init__(
            backbone=backbone,
            heads=heads,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            loss_kwargs=loss_kwargs,
        )
        if divergence not in DIVERGENCES:
            raise ValueError(
                f"KD.DIVERGENCE must be one of {', '.join(DIVERGENCES)}, got {divergence!r}."
            )
        if teacher_mode not in TEACHER_MODES:
            raise ValueError(
                f"KD.TEACHER_MODE must be one of {', '.join(TEACHER_MODES)}, got {teacher_mode!r}."
            )
        if teacher_norm not in TEACHER_NORMS:
            raise ValueError(
                f"KD.TEACHER_NORM must be one of {', '.join(TEACHER_NORMS)}, got {teacher_norm!r}."
            )
        if temperature <= 0:
            raise ValueError(f"KD.TEMPERATURE must be > 0, got {temperature}.")
        if ema_momentum is not None and not 0.0 <= ema_momentum < 1.0:
            raise ValueError(f"KD.EMA.MOMENTUM must be in [0, 1), got {ema_momentum}.")
        if not teachers and ema_momentum is None:
            raise ValueError(
                "Distiller has no teacher: set KD.MODEL_CONFIG and KD.MODEL_WEIGHTS (a trained "
                "teacher's config.yaml and model_best.pth) or KD.EMA.ENABLED True."
            )
        self.temperature = float(temperature)
        self.kd_weight = float(kd_weight)
        self.divergence = divergence
        self.teacher_mode = teacher_mode
        self.ema_momentum = ema_momentum
        self.ema_buffers = bool(ema_buffers)
        self.teacher_norm = teacher_norm
        # A plain list of modules or builders: deliberately not registered (see module doc).
        self._teacher_sources: List[TeacherSource] = list(teachers)
        self._file_teachers: Optional[List[nn.Module]] = None
        # A list, not an attribute: assigning a module would register it as a submodule.
        self._ema_teacher_slot: List[nn.Module] = []

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        kwargs = super().from_config(cfg)
        kd = cfg.KD
        configs, weights = list(kd.MODEL_CONFIG), list(kd.MODEL_WEIGHTS)
        if len(configs) != len(weights):
            raise ValueError(
                f"KD.MODEL_CONFIG has {len(configs)} entries but KD.MODEL_WEIGHTS has "
                f"{len(weights)}; give one weights file per teacher config, in the same order."
            )
        student_cfg = cfg.clone()
        num_classes = int(cfg.MODEL.HEADS.NUM_CLASSES) or None
        kwargs["teachers"] = [
            functools.partial(load_teacher, c, w, student_cfg, num_classes)
            for c, w in zip(configs, weights)
        ]
        kwargs["ema_momentum"] = float(kd.EMA.MOMENTUM) if kd.EMA.ENABLED else None
        kwargs["temperature"] = kd.TEMPERATURE
        kwargs["kd_weight"] = kd.LOSS_WEIGHT
        kwargs["divergence"] = kd.DIVERGENCE
        kwargs["teacher_mode"] = kd.TEACHER_MODE
        kwargs["ema_buffers"] = kd.EMA.BUFFERS
        kwargs["teacher_norm"] = kd.TEACHER_NORM
        return kwargs

    # -- teachers ----------------------------------------------------------------------------
    @property
    def num_teachers(self) -> int:
        return len(self._teacher_sources) + (self.ema_momentum is not None)

    def load_teachers(self) -> List[nn.Module]:
        """Build (once) and return the file teachers, frozen, on the student's device."""
        if self._file_teachers is None:
            teachers = []
            for i, source in enumerate(self._teacher_sources):
                teacher = source if isinstance(source, nn.Module) else source()
                teachers.append(self.add_frozen_model(f"teacher_{i}", teacher))
            self._check_teacher_classes(teachers)
            self._file_teachers = teachers
            self._on_teachers_loaded(teachers)
        return self._file_teachers

    def _check_teacher_classes(self, teachers: Sequence[nn.Module]) -> None:
        student = getattr(self.heads, "num_classes", None)
        for i, teacher in enumerate(teachers):
            heads = getattr(teacher, "heads", None)
            count = getattr(heads, "num_classes", None)
            if count == 0:
                raise ValueError(
                    f"Teacher {i} has no classifier (0 classes), so it gives no class logits to "
                    "distil. " + getattr(heads, "no_logits_hint", "")
                )
            if isinstance(student, int) and isinstance(count, int) and count != student:
                raise ValueError(
                    f"Teacher {i} has {count} classes but the student has {student}: logit "
                    "distillation compares class distributions, so teacher and student must be "
                    "trained on the same identities (the same DATASETS.NAMES)."
                )

    def _on_teachers_loaded(self, teachers: Sequence[nn.Module]) -> None:
        """Hook for subclasses (margins of the overhaul loss)."""

    def teachers(self) -> List[nn.Module]:
        """All teachers in loss order: the EMA teacher first (when enabled), then the files."""
        file_teachers = self.load_teachers()
        return self._ema_teacher_slot + file_teachers

    def _student_copy(self) -> Baseline:
        return Baseline(
            backbone=copy.deepcopy(self.backbone),
            heads=copy.deepcopy(self.heads),
            pixel_mean=self.pixel_mean.flatten().tolist(),
            pixel_std=self.pixel_std.flatten().tolist(),
            loss_kwargs=self.loss_kwargs,
        )

    @torch.no_grad()
    def update_ema_teacher(self) -> None:
        """Create the EMA teacher from the student (first call) or move it towards it."""
        if self.ema_momentum is None:
            return
        if not self._ema_teacher_slot:
            self._ema_teacher_slot.append(
                self.add_frozen_model("ema_teacher", self._student_copy())
            )
            return
        m = self.ema_momentum
        ema_state = self._ema_teacher_slot[0].state_dict()
        params = {f"backbone.{k}" for k, _ in self.backbone.named_parameters()}
        params |= {f"heads.{k}" for k, _ in self.heads.named_parameters()}
        for name, value in self._student_copy_state().items():
            target = ema_state[name]
            if name not in params and not self.ema_buffers:
                continue  # FastReID: buffers are not averaged
            if target.is_floating_point():
                target.mul_(m).add_(value.detach(), alpha=1.0 - m)
            else:
                target.copy_(value)

    def _student_copy_state(self) -> Dict[str, torch.Tensor]:
        state = {f"backbone.{k}": v for k, v in self.backbone.state_dict().items()}
        state.update({f"heads.{k}": v for k, v in self.heads.state_dict().items()})
        return state

    def _prepare_teacher(self, teacher: nn.Module) -> nn.Module:
        teacher.train(self.teacher_mode == "train")
        return teacher

    def teacher_inputs(self, teacher: nn.Module, batched_inputs: BatchedInputs) -> BatchedInputs:
        """What ``teacher`` is given: the batch itself (``teacher_norm="own"``), or a batch
        whose images the teacher's own normalisation turns into the student's normalised
        images (``"student"``, FastReID's behaviour)."""
        if self.teacher_norm == "own":
            return batched_inputs
        normalised = self.preprocess_image(batched_inputs).float()
        images = normalised * teacher.pixel_std + teacher.pixel_mean
        if isinstance(batched_inputs, torch.Tensor):
            return images
        return {**batched_inputs, "images": images}

    # -- training: Baseline's forward, with the teachers' logits as extra loss inputs ------
    def extra_loss_inputs(
        self,
        batched_inputs: BatchedInputs,
        images: torch.Tensor,
        outputs: Dict[str, torch.Tensor],
    ) -> Dict[str, Any]:
        self.update_ema_teacher()
        return {"teacher_logits": self.teacher_logits(batched_inputs)}

    @torch.no_grad()
    def teacher_logits(self, batched_inputs: BatchedInputs) -> List[torch.Tensor]:
        """Each teacher's margin-free logits ``(B, C)`` for the batch (teachers normalise the
        raw images with their own PIXEL_MEAN/STD)."""
        return [
            self._prepare_teacher(teacher).head_outputs(
                self.teacher_inputs(teacher, batched_inputs)
            )["pred_class_logits"]
            for teacher in self.teachers()
        ]

    def losses(
        self,
        outputs: Dict[str, torch.Tensor],
        gt_labels: torch.Tensor,
        teacher_logits: Optional[Sequence[torch.Tensor]] = None,
        **extra: Any,
    ) -> Dict[str, torch.Tensor]:
        """Baseline's losses plus the logit distillation loss when ``teacher_logits`` is given."""
        loss_dict = super().losses(outputs, gt_labels)
        if teacher_logits:
            student = outputs["pred_class_logits"]
            total = sum(
                logit_distillation_loss(student, t, self.temperature, self.divergence)
                for t in teacher_logits
            )
            loss_dict[_LOSS_KEYS[self.divergence]] = total / len(teacher_logits) * self.kd_weight
        return loss_dict


@META_ARCH_REGISTRY.register()
class DistillerOverhaul(Distiller):
    """:class:`Distiller` plus the overhaul feature loss (Heo et al., ICCV 2019).

    Every stage ``j`` of the student goes through a connector (1x1 conv + BN) to the
    teacher's channels and is compared with the teacher's pre-ReLU stage feature by the
    partial L2 with the margin from the teacher's BN (:func:`margin_from_bn`), summed over
    stages with weights 1/8, 1/4, 1/2, 1, divided by the batch size, 10000 and the number of
    teachers: ``loss_overhaul``. Student and teachers need backbones with pre-ReLU stage
    features (:func:`pre_relu_stage_support`), the same input size and stage strides.

    Connectors (trainable) and margins (buffers ``margin{i}_{j}``) are saved with the student;
    teacher ``i`` counts the EMA teacher first when it is enabled.

    Args (besides Distiller's):
        teacher_channels: stage channels of each file teacher; ``None`` when unknown now
            (evaluation without teacher files: the connectors are then created from the
            checkpoint being loaded, or training stops with the reason).
        overhaul_weight: weight of ``loss_overhaul``.
    """

    @configurable
    def __init__(
        self,
        *,
        teacher_channels: Optional[Sequence[Sequence[int]]] = None,
        overhaul_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        reason = pre_relu_stage_support(self.backbone)
        if reason is not None:
            raise ValueError(f"DistillerOverhaul: the student backbone {reason}")
        self.overhaul_weight = float(overhaul_weight)
        self.connectors = nn.ModuleList()
        if teacher_channels is None and all(
            isinstance(t, nn.Module) for t in self._teacher_sources
        ):
            teacher_channels = [list(t.backbone.stage_channels) for t in self._teacher_sources]
        if teacher_channels is not None:
            if len(teacher_channels) != len(self._teacher_sources):
                raise ValueError(
                    f"teacher_channels has {len(teacher_channels)} entries for "
                    f"{len(self._teacher_sources)} teachers."
                )
            self._build_connectors(teacher_channels)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        kwargs = super().from_config(cfg)
        channels = [_teacher_stage_channels(c, cfg) for c in cfg.KD.MODEL_CONFIG]
        kwargs["teacher_channels"] = None if any(c is None for c in channels) else channels
        kwargs["overhaul_weight"] = cfg.KD.OVERHAUL_WEIGHT
        return kwargs

    def _all_teacher_channels(self, file_channels: Sequence[Sequence[int]]) -> List[List[int]]:
        student = list(self.backbone.stage_channels)
        ema = [student] if self.ema_momentum is not None else []
        return ema + [list(c) for c in file_channels]

    def _build_connectors(self, file_channels: Sequence[Sequence[int]]) -> None:
        student = list(self.backbone.stage_channels)
        for i, channels in enumerate(self._all_teacher_channels(file_channels)):
            if len(channels) != len(student):
                raise ValueError(
                    f"Teacher {i} has {len(channels)} stages, the student {len(student)}; "
                    "overhaul distillation pairs them stage by stage."
                )
            self.connectors.append(
                nn.ModuleList(build_connector(s, t) for s, t in zip(student, channels))
            )
            for j, t in enumerate(channels, start=1):
                self.register_buffer(f"margin{i}_{j}", torch.zeros(1, t, 1, 1, device=self.device))
        self.connectors.to(self.device)

    def margins(self, teacher_index: int) -> List[torch.Tensor]:
        count = len(self.connectors[teacher_index])
        return [getattr(self, f"margin{teacher_index}_{j}") for j in range(1, count + 1)]

    def _set_margins(self, teacher_index: int, teacher: nn.Module) -> None:
        for j, bn in enumerate(teacher.backbone.get_bn_before_relu(), start=1):
            getattr(self, f"margin{teacher_index}_{j}").copy_(margin_from_bn(bn))

    def _on_teachers_loaded(self, teachers: Sequence[nn.Module]) -> None:
        if len(self.connectors) != self.num_teachers:
            raise ValueError(
                "DistillerOverhaul's connectors were not built: the teacher configs "
                f"({[getattr(t, 'func', t) for t in self._teacher_sources]}) could not be read "
                "when the model was built. Check KD.MODEL_CONFIG."
            )
        offset = 1 if self.ema_momentum is not None else 0
        for i, teacher in enumerate(teachers):
            reason = pre_relu_stage_support(teacher.backbone)
            if reason is not None:
                raise ValueError(f"DistillerOverhaul: teacher {i}'s backbone {reason}")
            with torch.no_grad():
                self._set_margins(i + offset, teacher)

    @torch.no_grad()
    def update_ema_teacher(self) -> None:
        super().update_ema_teacher()
        if self._ema_teacher_slot:  # its BN moves with the student: refresh its margins
            self._set_margins(0, self._ema_teacher_slot[0])

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: Dict[str, Any],
        strict: bool,
        missing_keys: List[str],
        unexpected_keys: List[str],
        error_msgs: List[str],
    ) -> None:
        # Evaluation without teacher files: size the connectors from the checkpoint.
        if len(self.connectors) == 0:
            file_channels = self._channels_in_state_dict(state_dict, prefix)
            if file_channels:
                self._build_connectors(file_channels)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _channels_in_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str
    ) -> List[List[int]]:
        offset = 1 if self.ema_momentum is not None else 0
        channels: List[List[int]] = []
        i = offset
        while f"{prefix}connectors.{i}.0.0.weight" in state_dict:
            stages = []
            j = 0
            while f"{prefix}connectors.{i}.{j}.0.weight" in state_dict:
                stages.append(int(state_dict[f"{prefix}connectors.{i}.{j}.0.weight"].shape[0]))
                j += 1
            channels.append(stages)
            i += 1
        return channels

    # -- training ----------------------------------------------------------------------------
    def forward(
        self, batched_inputs: BatchedInputs
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        if not self.training:
            return super().forward(batched_inputs)
        # Baseline's training forward, except that the backbone also gives its stage features.
        images = self.preprocess_image(batched_inputs)
        targets = self.get_targets(batched_inputs)
        s_stages, s_map = stage_features(self.backbone, images)
        outputs = self.heads(s_map, targets)
        if in_bn_statistics_pass():  # precise BN: no teacher, no EMA update
            return {}
        extra = self.extra_loss_inputs(batched_inputs, images, outputs)
        return self.losses(outputs, targets, student_stages=s_stages, **extra)

    def extra_loss_inputs(
        self,
        batched_inputs: BatchedInputs,
        images: torch.Tensor,
        outputs: Dict[str, torch.Tensor],
    ) -> Dict[str, Any]:
        self.update_ema_teacher()
        logits, stages = self.teacher_outputs(batched_inputs)
        return {"teacher_logits": logits, "teacher_stages": stages}

    @torch.no_grad()
    def teacher_outputs(
        self, batched_inputs: BatchedInputs
    ) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        """Each teacher's logits ``(B, C)`` and pre-ReLU stage features."""
        logits, stages = [], []
        for teacher in self.teachers():
            teacher = self._prepare_teacher(teacher)
            images = teacher.preprocess_image(self.teacher_inputs(teacher, batched_inputs))
            t_stages, t_map = stage_features(teacher.backbone, images)
            targets = teacher.get_targets(batched_inputs) if teacher.training else None
            logits.append(head_logits(teacher.heads, t_map, targets))
            stages.append(t_stages)
        return logits, stages

    def losses(
        self,
        outputs: Dict[str, torch.Tensor],
        gt_labels: torch.Tensor,
        teacher_logits: Optional[Sequence[torch.Tensor]] = None,
        student_stages: Optional[Sequence[torch.Tensor]] = None,
        teacher_stages: Optional[Sequence[Sequence[torch.Tensor]]] = None,
        **extra: Any,
    ) -> Dict[str, torch.Tensor]:
        """Distiller's losses plus ``loss_overhaul`` when stage features are given."""
        loss_dict = super().losses(outputs, gt_labels, teacher_logits=teacher_logits)
        if student_stages is not None and teacher_stages:
            total = student_stages[0].new_zeros(())
            for i, t_stages in enumerate(teacher_stages):
                mapped = [conn(s) for conn, s in zip(self.connectors[i], student_stages)]
                total = total + overhaul_distillation_loss(mapped, t_stages, self.margins(i))
            loss_dict["loss_overhaul"] = total / len(teacher_stages) * self.overhaul_weight
        return loss_dict
