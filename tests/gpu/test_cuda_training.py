"""CUDA training: AMP fp16 / bf16 and the CUDA graph resume exactly; graph and fused
optimizer train like the eager step."""

from __future__ import annotations

import itertools

import pytest
import torch

from fastreid.data import build_reid_train_loader
from fastreid.engine import AMPTrainer, CallbackHook, DefaultTrainer
from fastreid.modeling import build_model
from fastreid.solver import build_optimizer
from fastreid.utils.env import seed_all_rng

from ..engine.conftest import train_until_killed
from .conftest import DEVICE, fp16_needs_cuda, needs_cuda, tiny_config

pytestmark = [pytest.mark.cuda, needs_cuda]


def _cfg(root, out, device, dtype, graph=False, epochs=2):
    return tiny_config(
        root,
        out,
        **{
            "MODEL.DEVICE": device,
            "SOLVER.AMP.ENABLED": True,
            "SOLVER.AMP.DTYPE": dtype,
            "SOLVER.AMP.CPU": True,
            "SOLVER.CUDA_GRAPH": graph,
            "SOLVER.MAX_EPOCH": epochs,
            "TEST.EVAL_PERIOD": epochs,
            "CUDNN_BENCHMARK": False,
        },
    )


def _trainer(cfg, seed=None):
    seed_all_rng(cfg.SEED if seed is None else seed)
    return DefaultTrainer(cfg)


@pytest.mark.parametrize(
    "dtype, graph",
    [
        pytest.param("float16", False, marks=fp16_needs_cuda),
        ("bfloat16", False),
        ("bfloat16", True),
    ],
)
def test_amp_training_resumes_exactly(
    synthetic_root, tmp_path, device, deterministic, dtype, graph
):
    epochs = 3 if graph else 2  # with a graph: eager warm-up, capture and replays on both sides
    full = _trainer(_cfg(synthetic_root, str(tmp_path / "full"), device, dtype, graph, epochs))
    if graph and device == "cuda":
        assert full._trainer.graph_step is not None
    if dtype == "float16":
        assert full._trainer.grad_scaler is not None
    full.resume_or_load(resume=False)
    full_results = full.train()

    cfg = _cfg(synthetic_root, str(tmp_path / "killed"), device, dtype, graph, epochs)
    killed = _trainer(cfg)
    killed.resume_or_load(resume=False)

    train_until_killed(killed)
    resumed = _trainer(cfg, seed=cfg.SEED + 1)
    resumed.resume_or_load(resume=True)
    assert resumed.start_epoch == 1
    resumed_results = resumed.train()

    final = resumed.model.state_dict()
    for key, value in full.model.state_dict().items():
        assert torch.equal(final[key], value), key
    if dtype == "float16":
        assert resumed._trainer.grad_scaler.get_scale() == full._trainer.grad_scaler.get_scale()
    assert resumed_results == full_results


def _step_losses(root, tmp_path, device, graph, fused, steps=8):
    cfg = tiny_config(
        root,
        str(tmp_path),
        **{"MODEL.DEVICE": device, "SOLVER.FUSED": fused, "SOLVER.CUDA_GRAPH": graph},
    )
    torch.manual_seed(0)
    loader = build_reid_train_loader(cfg)
    cfg.MODEL.HEADS.NUM_CLASSES = loader.dataset.num_classes
    batches = list(itertools.islice(iter(loader), 2))
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    trainer = AMPTrainer(
        model,
        itertools.cycle(batches),
        optimizer,
        device_type=device,
        dtype=torch.bfloat16,
        log_period=100,
        cuda_graph=graph,
    )

    def decay(t):  # the learning rate changes every step, as under the LR scheduler
        for group in optimizer.param_groups:
            group["lr"] = 3e-4 * 0.9**t.iter

    trainer.register_hooks([CallbackHook(before_step=decay)])
    trainer.train(0, 1, steps)
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    return losses, trainer


def test_cuda_graph_step_gives_the_eager_losses(synthetic_root, tmp_path, device, deterministic):
    eager, _ = _step_losses(synthetic_root, tmp_path / "e", device, graph=False, fused=True)
    graphed, trainer = _step_losses(synthetic_root, tmp_path / "g", device, graph=True, fused=True)
    if device == "cuda":
        assert trainer.graph_step is not None and trainer.graph_step.captures == 1
        assert trainer.graph_step.disabled is None
    # The eager run's optimizer is not capturable (float learning rates): rounding only.
    torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-5)
    assert graphed[-1] < graphed[0]


def test_fused_optimizer_trains_like_foreach(synthetic_root, tmp_path, device, deterministic):
    fused, trainer = _step_losses(synthetic_root, tmp_path / "f", device, graph=False, fused=True)
    foreach, _ = _step_losses(synthetic_root, tmp_path / "m", device, graph=False, fused=False)
    if DEVICE == "cuda":
        assert trainer.optimizer.param_groups[0]["fused"] is True
    torch.testing.assert_close(fused, foreach, rtol=1e-4, atol=1e-5)
