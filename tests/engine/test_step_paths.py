"""One training step for every precision and the CUDA-graph path, checked on the CPU.

The CUDA graph itself needs a GPU (tests/gpu); here its bookkeeping (static input buffers,
learning rates read from tensors, re-capture when frozen groups change, giving up on a shape
change) runs without a graph and must train exactly like the eager step.
"""

from __future__ import annotations

import itertools
import logging

import pytest
import torch

from fastreid.data import build_reid_train_loader
from fastreid.engine import AMPTrainer, CallbackHook, SimpleTrainer
from fastreid.engine.cuda_graph import CudaGraphStep, ShapeChangedError, StaticBatch
from fastreid.modeling import build_model
from fastreid.modeling.losses import triplet_loss
from fastreid.solver import build_gradient_clipper, build_optimizer

from .conftest import tiny_config


def _setup(root, tmp_path, **overrides):
    torch.manual_seed(0)
    cfg = tiny_config(root, str(tmp_path), **overrides)
    loader = build_reid_train_loader(cfg)
    cfg.MODEL.HEADS.NUM_CLASSES = loader.dataset.num_classes
    batches = list(itertools.islice(iter(loader), 3))
    torch.manual_seed(0)
    model = build_model(cfg)
    return cfg, model, build_optimizer(cfg, model), batches


def _params(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


def _losses(trainer):
    return [v for v, _ in trainer.storage.history("total_loss").values()]


def test_float16_scaler_path_on_the_cpu_matches_the_plain_step(synthetic_root, tmp_path):
    """A GradScaler (power-of-two scale: exact) with clipping goes through scale, unscale_,
    clip, scaler.step and update in the shared step, and changes no number."""
    overrides = {"SOLVER.CLIP_GRADIENTS.ENABLED": True, "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 0.5}
    results = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0**12)):
        cfg, model, optimizer, batches = _setup(synthetic_root, tmp_path, **overrides)
        trainer = SimpleTrainer(
            model,
            itertools.cycle(batches),
            optimizer,
            grad_clipper=build_gradient_clipper(cfg),
            grad_scaler=scaler,
            log_period=100,
        )
        trainer.train(0, 1, 4)
        results.append((_losses(trainer), _params(model)))
        if scaler is not None:
            assert trainer.state_dict()["grad_scaler"]["scale"] == 2.0**12  # no inf seen
    (plain_losses, plain), (scaled_losses, scaled) = results
    assert plain_losses == scaled_losses
    assert all(torch.equal(plain[k], scaled[k]) for k in plain)


def test_amp_trainer_is_the_shared_step_under_autocast(synthetic_root, tmp_path):
    runs = []
    for make in (
        lambda m, b, o: AMPTrainer(m, b, o, device_type="cpu", dtype=torch.bfloat16),
        lambda m, b, o: SimpleTrainer(m, b, o, autocast=("cpu", torch.bfloat16)),
    ):
        _, model, optimizer, batches = _setup(synthetic_root, tmp_path)
        trainer = make(model, itertools.cycle(batches), optimizer)
        trainer.train(0, 1, 3)
        runs.append((_losses(trainer), _params(model)))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    with pytest.raises(ValueError, match="bfloat16 only"):
        AMPTrainer(model, batches, optimizer, device_type="cpu", dtype=torch.float16)


class _HostReadError(AssertionError):
    pass


def test_forward_and_losses_never_read_a_tensor_on_the_host(synthetic_root, tmp_path, monkeypatch):
    """Each host read (.item(), bool(), float(), .tolist()) would make a GPU step wait."""
    overrides = {"MODEL.LOSSES.TRI.MARGIN": 0.0}  # the soft-margin triplet and its fallback
    _, model, _, batches = _setup(synthetic_root, tmp_path, **overrides)

    def refuse(*args, **kwargs):
        raise _HostReadError("a tensor was read on the host inside the step")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    loss_dict = model(batches[0])
    total = sum(loss_dict.values())
    total.backward()
    monkeypatch.undo()
    assert {"loss_cls", "loss_triplet"} <= set(loss_dict)
    assert torch.isfinite(total).item()


def test_soft_margin_triplet_falls_back_to_the_hinge_on_overflow_without_a_branch():
    ids = torch.tensor([0, 0, 1, 1])
    close = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [1.0, 3.0]])
    plain = triplet_loss(close, ids, 0.0, False, True)
    ap, an = torch.ones(4), torch.full((4,), 3.0)  # farthest positive, closest negative
    assert plain.item() == pytest.approx(torch.log1p(torch.exp(ap - an)).mean().item(), abs=1e-6)
    # Far positives and near negatives: exp(d_ap - d_an) overflows float32.
    far = torch.tensor([[0.0, 0.0], [200.0, 0.0], [0.0, 0.5], [200.0, 0.5]], requires_grad=True)
    loss = triplet_loss(far, ids, 0.0, False, True)
    ap = torch.full((4,), 200.0)
    an = torch.tensor([0.5, 0.5, 0.5, 0.5])
    assert loss.item() == pytest.approx((ap - an + 0.3).mean().item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(far.grad).all()


# -- the CUDA graph's bookkeeping ---------------------------------------------------------------
def test_cuda_graph_on_the_cpu_warns_once_and_trains_eagerly(synthetic_root, tmp_path, caplog):
    _, model, optimizer, batches = _setup(synthetic_root, tmp_path)
    with caplog.at_level(logging.WARNING, logger="fastreid.engine.train_loop"):
        trainer = SimpleTrainer(model, itertools.cycle(batches), optimizer, cuda_graph=True)
    warnings = [r.getMessage() for r in caplog.records if "SOLVER.CUDA_GRAPH" in r.getMessage()]
    assert warnings == [
        "SOLVER.CUDA_GRAPH: a CUDA graph needs the model on a CUDA device; "
        "training without a CUDA graph."
    ]
    assert trainer.graph_step is None
    trainer.train(0, 1, 2)
    assert len(_losses(trainer)) == 2


def test_refusals_name_what_to_change(synthetic_root, tmp_path, monkeypatch):
    _, model, optimizer, batches = _setup(synthetic_root, tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    trainer = SimpleTrainer(model, batches, optimizer)
    assert "CUDA device" in CudaGraphStep.refusal(trainer)  # parameters on the CPU
    for p in trainer._params:  # pretend they live on a GPU: the remaining checks run
        monkeypatch.setattr(type(p), "device", property(lambda self: torch.device("cuda", 0)))
    assert "capturable=True" in CudaGraphStep.refusal(trainer)
    for group in optimizer.param_groups:
        group["capturable"] = True
    assert CudaGraphStep.refusal(trainer) is None
    trainer.grad_scaler = torch.amp.GradScaler("cpu")
    assert "SOLVER.AMP.DTYPE bfloat16" in CudaGraphStep.refusal(trainer)
    trainer.grad_scaler = None
    monkeypatch.setattr("fastreid.utils.comm.get_world_size", lambda: 2)
    assert "DDP" in CudaGraphStep.refusal(trainer)


def test_static_batch_copies_into_fixed_buffers_and_rejects_new_shapes():
    first = {"images": torch.rand(4, 3, 8, 4), "targets": torch.arange(4), "img_paths": ["a"] * 4}
    static = StaticBatch(first, torch.device("cpu"))
    pointer = static.data["images"].data_ptr()
    assert static.data["images"] is not first["images"]
    assert torch.equal(static.data["images"], first["images"])
    second = {"images": torch.rand(4, 3, 8, 4), "targets": torch.arange(4) + 4, "img_paths": []}
    static.copy_from(second)
    assert static.data["images"].data_ptr() == pointer
    assert torch.equal(static.data["images"], second["images"])
    assert torch.equal(static.data["targets"], second["targets"])
    with pytest.raises(ShapeChangedError, match="fixed shapes"):
        static.copy_from(dict(second, images=torch.rand(3, 3, 8, 4)))
    with pytest.raises(ShapeChangedError):
        static.copy_from(dict(second, targets=second["targets"].int()))


def _run(root, tmp_path, graph, steps=6, freeze_at=None, shape_change_at=None):
    cfg, model, optimizer, batches = _setup(
        root, tmp_path, **{"SOLVER.CLIP_GRADIENTS.ENABLED": True}
    )
    stream = [batches[i % 3] for i in range(steps)]
    if shape_change_at is not None:
        small = {k: (v[:8] if torch.is_tensor(v) else v) for k, v in batches[0].items()}
        stream[shape_change_at] = small
    trainer = SimpleTrainer(
        model, iter(stream), optimizer, grad_clipper=build_gradient_clipper(cfg), log_period=100
    )
    if graph:
        trainer.graph_step = CudaGraphStep(trainer, capture=False)

    def schedule(t):  # a new learning rate every step, as the LR scheduler writes it
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = 1e-3 * (1 + t.iter) / (1 + i)
        frozen = freeze_at is not None and t.iter < freeze_at
        for group in optimizer.param_groups:
            group["freeze_status"] = (
                "freeze" if frozen and group["name"] == "backbone" else "normal"
            )
        if freeze_at is not None:  # LayerFreeze also puts frozen modules in eval mode
            model.backbone.train(t.iter >= freeze_at + 2)

    trainer.register_hooks([CallbackHook(before_step=schedule)])
    trainer.train(0, 1, steps)
    return trainer, _losses(trainer), _params(model)


def test_graph_bookkeeping_trains_exactly_like_the_eager_step(synthetic_root, tmp_path):
    _, eager_losses, eager = _run(synthetic_root, tmp_path, graph=False, freeze_at=2)
    trainer, losses, params = _run(synthetic_root, tmp_path, graph=True, freeze_at=2)
    assert losses == eager_losses
    assert all(torch.equal(params[k], eager[k]) for k in eager)
    # Captured with the backbone frozen, again when its optimizer group was unfrozen, and
    # again when its modules went back to training mode.
    assert trainer.graph_step.captures == 3
    assert all(isinstance(g["lr"], float) for g in trainer.optimizer.param_groups)


def test_a_shape_change_gives_up_the_graph_with_one_warning(synthetic_root, tmp_path, caplog):
    _, eager_losses, eager = _run(synthetic_root, tmp_path, graph=False, shape_change_at=3)
    with caplog.at_level(logging.WARNING, logger="fastreid.engine.cuda_graph"):
        trainer, losses, params = _run(synthetic_root, tmp_path, graph=True, shape_change_at=3)
    assert "fixed shapes" in trainer.graph_step.disabled
    assert sum("training on without a CUDA graph" in r.getMessage() for r in caplog.records) == 1
    assert losses == eager_losses
    assert all(torch.equal(params[k], eager[k]) for k in eager)


def test_moco_queue_enqueues_without_reading_its_pointer_on_the_host(monkeypatch):
    from fastreid.modeling.meta_arch.moco import FeatureQueue

    queue = FeatureQueue(dim=4, size=6)
    keys = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)

    def refuse(*args, **kwargs):
        raise _HostReadError("a tensor was read on the host inside the step")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    queue.enqueue(keys[:4], torch.arange(4))
    queue.enqueue(keys[4:], torch.arange(4, 8))  # wraps around: slots 4, 5, 0, 1
    monkeypatch.undo()
    assert queue.queue_ptr.tolist() == [2]
    assert queue.queue_label.tolist() == [6, 7, 2, 3, 4, 5]
    expected = torch.stack([keys[6], keys[7], keys[2], keys[3], keys[4], keys[5]], dim=1)
    assert torch.equal(queue.queue, expected)


def test_a_failed_capture_gives_up_the_graph_and_the_step_runs_eagerly(
    synthetic_root, tmp_path, caplog
):
    _, model, optimizer, batches = _setup(synthetic_root, tmp_path)
    trainer = SimpleTrainer(model, itertools.cycle(batches), optimizer, log_period=100)
    graph = trainer.graph_step = CudaGraphStep(trainer, capture=False)

    def capture(signature):
        raise RuntimeError("operation not permitted when stream is capturing")

    graph._capture = capture
    with caplog.at_level(logging.WARNING, logger="fastreid.engine.cuda_graph"):
        trainer.train(0, 1, 3)
    assert graph.disabled.startswith("capturing the step failed (RuntimeError: operation not")
    assert sum("without a CUDA graph" in r.getMessage() for r in caplog.records) == 1

    _, model2, optimizer2, batches2 = _setup(synthetic_root, tmp_path)
    eager = SimpleTrainer(model2, itertools.cycle(batches2), optimizer2, log_period=100)
    eager.train(0, 1, 3)
    assert _losses(trainer) == _losses(eager)
