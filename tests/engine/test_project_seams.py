"""A tiny project built only on the core's seams: a registered classification dataset (no
cameras, a ``test`` split), a registered evaluator chosen by TEST.EVALUATOR, a meta-arch with
an extra loss input, a trainer with a second optimizer whose state lives in per-rank files,
and a distiller whose frozen teacher stays in eval mode and out of the checkpoints."""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Dict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fastreid.config import configurable, get_cfg
from fastreid.data.datasets import DATASET_REGISTRY, ImageDataset
from fastreid.engine import DefaultTrainer, ExtraOptimizer
from fastreid.evaluation import EVALUATOR_REGISTRY, DatasetEvaluator
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY, Baseline
from fastreid.utils import comm
from fastreid.utils.checkpoint import load_checkpoint_file
from fastreid.utils.env import seed_all_rng

from .conftest import train_until_killed

NUM_CLASSES = 4
COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30)]


def _write_split(folder: str, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for label, colour in enumerate(COLOURS):
        os.makedirs(os.path.join(folder, f"class{label}"), exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-30, 30, (40, 48, 3))
            img = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(os.path.join(folder, f"class{label}", f"{i}.png"))


@DATASET_REGISTRY.register()
class SeamsToyClasses(ImageDataset):
    """``<root>/seams_toy/{train,val}/<class>/*.png``: class labels, no cameras, test split."""

    dataset_name = "seamstoy"

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        base = os.path.join(root, "seams_toy")
        splits = {}
        for split in ("train", "val"):
            folder = os.path.join(base, split)
            splits[split] = [
                (os.path.join(folder, c, n), int(c[len("class") :]), None)
                for c in sorted(os.listdir(folder))
                for n in sorted(os.listdir(os.path.join(folder, c)))
            ]
        super().__init__(splits["train"], [], [], verbose=verbose, test=splits["val"])


@DATASET_REGISTRY.register()
class SeamsToyClassesAgain(SeamsToyClasses):
    """The same data under a second name, for several test sets."""


@EVALUATOR_REGISTRY.register()
class SeamsTop1(DatasetEvaluator):
    """Top-1 accuracy of class logits; ``metric`` = accuracy."""

    built_for: list = []

    def __init__(self, dataset_name: str) -> None:
        self.dataset_name = dataset_name
        self.reset()

    @classmethod
    def from_test_set(cls, cfg, *, test_set, num_query, dataset_name, output_dir=None):
        assert isinstance(test_set.source, SeamsToyClasses)
        assert num_query == len(test_set) == len(test_set.source.test)
        cls.built_for.append(dataset_name)
        return cls(dataset_name)

    def reset(self) -> None:
        self.correct, self.total = 0, 0

    def process(self, inputs: Dict, outputs: torch.Tensor) -> None:
        assert (inputs["camids"] == -1).all()  # no camera in this dataset
        self.correct += int((outputs.argmax(1).cpu() == inputs["targets"]).sum())
        self.total += len(outputs)

    def evaluate(self) -> OrderedDict:
        acc = 100.0 * self.correct / max(1, self.total)
        return OrderedDict([("Acc@1", acc), ("metric", acc)])


@META_ARCH_REGISTRY.register()
class SeamsAuxNet(Baseline):
    """Baseline plus an auxiliary classifier trained by its own optimizer; its loss gets an
    extra input through ``extra_loss_inputs``."""

    @configurable
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aux = nn.Linear(self.heads.feat_dim, NUM_CLASSES)

    def extra_loss_inputs(self, batched_inputs, images, outputs) -> Dict[str, Any]:
        return {"aux_logits": self.aux(outputs["features"])}

    def losses(self, outputs, gt_labels, **extra):
        loss_dict = super().losses(outputs, gt_labels)
        loss_dict["loss_aux"] = F.cross_entropy(extra["aux_logits"], gt_labels)
        return loss_dict


class AuxTrainer(DefaultTrainer):
    @classmethod
    def build_optimizer(cls, cfg, model):
        params = [p for n, p in model.named_parameters() if not n.startswith("aux.")]
        return torch.optim.SGD(params, lr=cfg.SOLVER.BASE_LR, momentum=0.9)

    @classmethod
    def build_extra_optimizers(cls, cfg, model, iters_per_epoch):
        optimizer = torch.optim.SGD(model.aux.parameters(), lr=0.05, momentum=0.9)
        # Its own schedule: halve every iteration (visible in the saved state).
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"aux": ExtraOptimizer(optimizer, scheduler, per_rank=True)}


@META_ARCH_REGISTRY.register()
class SeamsDistiller(Baseline):
    """Student + a frozen teacher (another Baseline) whose eval-mode logits feed a KD loss."""

    @classmethod
    def from_config(cls, cfg):
        args = super().from_config(cfg)
        args["teacher"] = Baseline(cfg)
        return args

    @configurable
    def __init__(self, *, teacher: nn.Module, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_frozen_model("teacher", teacher)

    def extra_loss_inputs(self, batched_inputs, images, outputs):
        assert not self.teacher.training
        with torch.no_grad():
            teacher = self.teacher.head_outputs(batched_inputs)
        return {"teacher_logits": teacher["pred_class_logits"]}

    def losses(self, outputs, gt_labels, **extra):
        loss_dict = super().losses(outputs, gt_labels)
        student = F.log_softmax(outputs["pred_class_logits"], dim=1)
        teacher = F.softmax(extra["teacher_logits"], dim=1)
        loss_dict["loss_kd"] = F.kl_div(student, teacher, reduction="batchmean")
        return loss_dict


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("toy"))
    _write_split(os.path.join(root, "seams_toy", "train"), per_class=8, seed=0)
    _write_split(os.path.join(root, "seams_toy", "val"), per_class=3, seed=1)
    return root


def toy_config(root: str, output_dir: str, **overrides):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.DEPTH = "18x"
    cfg.MODEL.BACKBONE.FEAT_DIM = 512
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NAME = "ClasHead"
    cfg.MODEL.HEADS.NECK_FEAT = "after"
    cfg.MODEL.LOSSES.NAME = ("CrossEntropyLoss",)
    cfg.INPUT.SIZE_TRAIN = [32]  # shorter side
    cfg.INPUT.SIZE_TEST = [32]
    cfg.INPUT.CROP.ENABLED = True  # RandomResizedCrop in training, CenterCrop at test
    cfg.INPUT.CROP.SIZE = [28]
    cfg.INPUT.FLIP.ENABLED = False
    cfg.INPUT.REA.ENABLED = False
    cfg.INPUT.PADDING.ENABLED = False
    cfg.DATASETS.ROOT = root
    cfg.DATASETS.NAMES = ("SeamsToyClasses",)
    cfg.DATASETS.TESTS = ("SeamsToyClasses", "SeamsToyClassesAgain")
    cfg.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.AMP.ENABLED = False
    cfg.SOLVER.IMS_PER_BATCH = 8
    cfg.SOLVER.MAX_EPOCH = 2
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.WARMUP_ITERS = 0
    cfg.SOLVER.STEPS = [1]
    cfg.SOLVER.CHECKPOINT_PERIOD = 1
    cfg.SOLVER.LOG_PERIOD = 2
    cfg.TEST.EVAL_PERIOD = 1
    cfg.TEST.IMS_PER_BATCH = 8
    cfg.TEST.EVALUATOR = "SeamsTop1"
    cfg.SEED = 0
    cfg.OUTPUT_DIR = output_dir
    cfg.MODEL.META_ARCHITECTURE = "SeamsAuxNet"
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    return cfg


def _aux_trainer(cfg) -> AuxTrainer:
    seed_all_rng(cfg.SEED)
    return AuxTrainer(cfg)


def test_project_trains_with_a_second_optimizer_and_resumes_exactly(toy_root, tmp_path):
    SeamsTop1.built_for.clear()
    full = _aux_trainer(toy_config(toy_root, str(tmp_path / "full")))
    full.resume_or_load(resume=False)
    aux_before = full.model.aux.weight.detach().clone()
    results = full.train()

    # TEST.EVALUATOR picked the project's evaluator for each test set; results are nested
    # and each has a metric; model_best follows the first test set's metric.
    assert {"SeamsToyClasses", "SeamsToyClassesAgain"} <= set(SeamsTop1.built_for)
    assert set(results) == {"SeamsToyClasses", "SeamsToyClassesAgain"}
    for res in results.values():
        assert res["metric"] == res["Acc@1"]
    best = load_checkpoint_file(str(tmp_path / "full" / "model_best.pth"))
    assert best["best_metric"] is not None

    # The second optimizer trained the aux classifier with its own schedule: 4 iterations per
    # epoch (32 images / 8), lr halved after each.
    assert full.iters_per_epoch == 4
    assert not torch.equal(full.model.aux.weight, aux_before)
    extra = full.extra_optimizers["aux"]
    assert extra.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**8)
    assert full.storage.history("lr_aux").latest() == pytest.approx(0.05 * 0.5**7)

    # Per-rank state beside the main file, not inside it.
    main = load_checkpoint_file(str(tmp_path / "full" / "model_final.pth"))
    assert "optimizer_aux" not in main and "optimizer" in main
    shard = torch.load(str(tmp_path / "full" / "model_final_rank0.pth"), weights_only=True)
    assert set(shard) == {"optimizer_aux", "scheduler_aux", "world_size"}
    assert shard["scheduler_aux"]["last_epoch"] == 8
    assert all(not f.endswith("_rank0.pth") for f in full.checkpointer.get_all_checkpoint_files())

    # Killed in epoch 2, resumed: the same weights and the same second-optimizer state.
    cfg = toy_config(toy_root, str(tmp_path / "killed"))
    killed = _aux_trainer(cfg)
    killed.resume_or_load(resume=False)

    train_until_killed(killed)
    resumed = _aux_trainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_epoch == 1
    assert resumed.extra_optimizers["aux"].scheduler.last_epoch == 4
    resumed.train()
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    full_state = extra.optimizer.state_dict()["state"]
    resumed_state = resumed.extra_optimizers["aux"].optimizer.state_dict()["state"]
    for key in full_state:
        assert torch.equal(
            full_state[key]["momentum_buffer"], resumed_state[key]["momentum_buffer"]
        )


def test_resume_without_the_per_rank_file_names_it(toy_root, tmp_path):
    cfg = toy_config(toy_root, str(tmp_path), **{"SOLVER.MAX_EPOCH": 1})
    trainer = _aux_trainer(cfg)
    trainer.train()
    os.remove(tmp_path / "model_final_rank0.pth")
    again = _aux_trainer(cfg)
    with pytest.raises(Exception, match="model_final_rank0.pth"):
        again.resume_or_load(resume=True)


def test_frozen_teacher_stays_in_eval_mode_and_out_of_checkpoints(toy_root, tmp_path):
    cfg = toy_config(
        toy_root,
        str(tmp_path),
        **{"MODEL.META_ARCHITECTURE": "SeamsDistiller", "SOLVER.MAX_EPOCH": 1},
    )
    cfg.DATASETS.TESTS = ("SeamsToyClasses",)
    seed_all_rng(0)
    trainer = DefaultTrainer(cfg)
    model = trainer.model
    teacher = model.teacher
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    assert model.frozen_models == {"teacher": teacher}
    assert not any(k.startswith("teacher") for k in model.state_dict())
    assert all(not p.requires_grad for p in teacher.parameters())
    optimised = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in teacher.parameters()}

    results = trainer.train()  # trains, evaluates (EvalHook calls model.train() after)
    assert "metric" in results  # one test set: flat results
    assert model.training and not teacher.training
    assert not any(m.training for m in teacher.modules())
    for key, value in teacher.state_dict().items():  # BN statistics untouched too
        assert torch.equal(value, teacher_state[key]), key
    saved = load_checkpoint_file(str(tmp_path / "model_final.pth"))["model"]
    assert not any(k.startswith("teacher") for k in saved)
    assert len(trainer.storage.history("loss_kd").values()) == trainer.max_iter

    # .to() moves the teacher with the student.
    model.to(torch.float64)
    assert next(teacher.parameters()).dtype == torch.float64


@EVALUATOR_REGISTRY.register()
class SeamsNoMetric(SeamsTop1):
    def evaluate(self):
        return OrderedDict([("Acc@1", 1.0)])


def test_evaluator_without_metric_is_one_clear_error(toy_root, tmp_path):
    cfg = toy_config(toy_root, str(tmp_path), **{"TEST.EVALUATOR": "SeamsNoMetric"})
    cfg.MODEL.HEADS.NUM_CLASSES = NUM_CLASSES
    model = AuxTrainer.build_model(cfg)
    with pytest.raises(KeyError, match="metric"):
        AuxTrainer.test(cfg, model)
    assert comm.get_world_size() == 1
