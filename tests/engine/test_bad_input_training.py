"""Bad input, training runs: test sets checked before training, checkpoints kept on failure, losses."""

from __future__ import annotations

import logging

import pytest
import torch

from fastreid.data.common import CommDataset

from ..bad_input import (
    error_line,
    trainer_cfg,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


# -- training runs: test sets, checkpoints, losses, output folders ---------------------------


def test_misspelled_test_set_stops_training_before_the_first_step(tiny_reid_root, tmp_path):
    from fastreid.engine import DefaultTrainer

    cfg = trainer_cfg(tiny_reid_root, tmp_path, "DATASETS.TESTS", '("SyntheticReId",)')
    trainer = DefaultTrainer(cfg)
    steps = []
    trainer.register_hooks([_StepCounter(steps)])
    with pytest.raises(KeyError, match="Did you mean: SyntheticReID"):
        trainer.train()
    assert steps == [] and not list(tmp_path.glob("*.pth"))


class _StepCounter:
    """A hook that records the iterations it sees."""

    def __init__(self, steps):
        self.steps = steps

    def __getattr__(self, name):
        return lambda: None

    def after_step(self):
        self.steps.append(self.trainer.iter)


def test_test_set_without_gallery_or_true_match_is_refused_before_training(tmp_path):
    from fastreid.evaluation import ReidEvaluator
    from fastreid.evaluation.rank import NoTrueMatchError

    query = [("q0.jpg", 1, 0), ("q1.jpg", 2, 0)]
    same_camera = [("g0.jpg", 1, 0), ("g1.jpg", 3, 1), ("g2.jpg", -1, 1)]
    with pytest.raises(NoTrueMatchError, match=r"Test set 'Toy' \(DATASETS.TESTS\).*2 queries"):
        ReidEvaluator(2).check_test_set(CommDataset(query + same_camera, relabel=False), "Toy")
    with pytest.raises(ValueError, match=r"'Toy'.*2 query and 0 gallery images"):
        ReidEvaluator(2).check_test_set(CommDataset(query, relabel=False), "Toy")
    # One query with a match from another camera is enough.
    usable = same_camera + [("g3.jpg", 2, 1)]
    ReidEvaluator(2).check_test_set(CommDataset(query + usable, relabel=False), "Toy")


def test_the_epoch_is_saved_before_a_failing_evaluation(tiny_reid_root, tmp_path):
    from fastreid.engine import DefaultTrainer

    class BrokenTest(DefaultTrainer):
        @classmethod
        def test(cls, cfg, model):
            raise RuntimeError("evaluation crashed")

    trainer = BrokenTest(trainer_cfg(tiny_reid_root, tmp_path, "SOLVER.MAX_EPOCH", "1"))
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        trainer.train()
    assert (tmp_path / "model_final.pth").is_file()
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"


def test_nan_loss_is_one_error_naming_the_last_good_checkpoint(tiny_reid_root, tmp_path, capsys):
    from fastreid.engine import DefaultTrainer

    trainer = DefaultTrainer(trainer_cfg(tiny_reid_root, tmp_path, "SOLVER.MAX_EPOCH", "2"))
    first_bad = trainer.iters_per_epoch  # the first step of the second epoch

    def poison(module, inputs, losses):
        if trainer.iter >= first_bad:
            return {k: v * float("nan") for k, v in losses.items()}
        return losses

    trainer.model.register_forward_hook(poison)
    line = error_line(capsys, trainer.train)
    assert f"infinite or NaN at iteration {first_bad}" in line
    assert f"last good checkpoint is '{tmp_path / 'model_0000.pth'}'" in line
    assert "--resume" in line and "SOLVER.BASE_LR" in line
    assert not (tmp_path / "model_final.pth").exists()


def test_diverging_loss_warns_naming_the_learning_rate(caplog):
    import itertools

    from fastreid.engine import SimpleTrainer

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, batch):
            return {"loss_mse": ((self.w * batch["x"] - batch["y"]) ** 2).mean()}

    model = Regression()
    batch = {"x": torch.full((4,), 2.0), "y": torch.full((4,), 1.0)}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # ~50x the loss per step
    trainer = SimpleTrainer(model, itertools.repeat(batch), optimizer, log_period=1)
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        trainer.train(0, 1, 4)
    assert "training is diverging" in caplog.text
    assert "The learning rate is 1" in caplog.text and "SOLVER.BASE_LR" in caplog.text
    assert caplog.text.count("training is diverging") == 1


def test_stable_loss_gives_no_divergence_warning(caplog):
    import itertools

    from fastreid.engine import SimpleTrainer

    model = torch.nn.Linear(2, 1)
    batch = {"x": torch.ones(4, 2)}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = SimpleTrainer(
        _LossOf(model), itertools.repeat(batch), optimizer, log_period=1
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        trainer.train(0, 1, 4)
    assert "diverging" not in caplog.text


class _LossOf(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, batch):
        return {"loss": self.inner(batch["x"]).pow(2).mean() + 1.0}
