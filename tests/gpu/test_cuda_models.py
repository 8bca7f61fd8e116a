"""CUDA paths of the models, projects, evaluation and export, each against the CPU result."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.distributed as dist

from fastreid.engine import AMPTrainer, SimpleTrainer
from fastreid.engine.launch import find_free_port
from fastreid.evaluation import evaluate_rank
from projects.FastAttr.fastattr import AttrEvaluator
from projects.FastFace.fastface.partial_fc import PartialFC
from projects.FastFace.fastface.verification import FaceEvaluator
from projects.FastFace.tests.test_fastface_partial_fc import C, D, close, data, reference
from tests.modeling.test_distiller import _batch, _student

from .conftest import needs_cuda

pytestmark = [pytest.mark.cuda, needs_cuda]


# -- distillation ------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["Distiller", "DistillerOverhaul"])
def test_distiller_steps_on_the_device_match_the_cpu(tmp_path, device, deterministic, arch):
    model, _ = _student(tmp_path, arch=arch)
    model.train()
    batch = _batch()
    cpu_losses = model(batch)  # also builds the teachers
    on_device = copy.deepcopy(model).to(device)
    device_batch = {k: v.to(device) for k, v in batch.items()}
    device_losses = on_device(device_batch)
    assert set(device_losses) == set(cpu_losses) and len(cpu_losses) >= 2
    for name, value in cpu_losses.items():
        assert device_losses[name].device.type == device
        torch.testing.assert_close(device_losses[name].cpu(), value, rtol=1e-4, atol=1e-5)

    (teacher,) = on_device.teachers()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in on_device.backbone.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in on_device.parameters() if p.requires_grad], lr=0.01)
    trainer = AMPTrainer(
        on_device,
        itertools.repeat(device_batch),
        optimizer,
        device_type=device,
        dtype=torch.bfloat16,
        log_period=100,
    )
    trainer.train(0, 1, 3)
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 3 and all(np.isfinite(v) for v, _ in losses)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key  # the teacher stays frozen
    changed = [
        k
        for k, v in on_device.backbone.state_dict().items()
        if not torch.equal(v, student_before[k])
    ]
    assert changed


# -- PartialFC under NCCL (gloo on the CPU), one process ---------------------------------------
@pytest.fixture
def world_of_one(device):
    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{find_free_port()}", rank=0, world_size=1
    )
    try:
        yield backend
    finally:
        dist.destroy_process_group()


def test_partial_fc_step_on_the_device_matches_the_full_softmax(world_of_one, device):
    assert dist.get_backend() == world_of_one and dist.get_world_size() == 1
    feats, targets = data()
    pfc = PartialFC(C, D, sample_rate=1.0, scale=64, margin=0.4, device=torch.device(device))
    assert (pfc.class_start, pfc.num_local) == (0, C)  # the one shard holds every class
    optimizer = pfc.build_optimizer(lr=0.1, momentum=0.9, weight_decay=0.0)
    weight = pfc.weight.detach().cpu().clone().requires_grad_(True)
    f_cpu = feats.clone().requires_grad_(True)
    f_device = feats.clone().to(device).requires_grad_(True)
    loss = pfc(f_device, targets.to(device))
    loss.backward()
    expected = reference(f_cpu, targets, weight)
    expected.backward()
    torch.testing.assert_close(loss.cpu(), expected, rtol=1e-5, atol=1e-5)
    close(f_device.grad.cpu(), f_cpu.grad, rel=1e-4)
    close(pfc.sub_weight.grad.cpu(), weight.grad, rel=1e-4)
    grad = pfc.sub_weight.grad.detach().cpu().clone()
    optimizer.step()
    pfc.update()
    torch.testing.assert_close(pfc.weight.cpu(), weight.detach() - 0.1 * grad, rtol=1e-5, atol=1e-6)


def test_partial_fc_sampled_shard_on_the_device(world_of_one, device):
    feats, targets = data(1)
    pfc = PartialFC(C, D, sample_rate=0.5, seed=3, device=torch.device(device))
    optimizer = pfc.build_optimizer(lr=0.1, momentum=0.9, weight_decay=5e-4)
    before = pfc.weight.detach().cpu().clone()
    loss = pfc(feats.clone().to(device).requires_grad_(True), targets.to(device))
    index = pfc._index.cpu()
    assert index.numel() == int(0.5 * C)
    assert set(targets.tolist()) <= set(index.tolist())  # every positive class is sampled
    torch.testing.assert_close(
        loss.detach().cpu(), reference(feats, targets, before, columns=index), rtol=1e-5, atol=1e-5
    )
    loss.backward()
    optimizer.step()
    pfc.update()
    untouched = torch.ones(C, dtype=torch.bool)
    untouched[index] = False
    assert torch.equal(pfc.weight.cpu()[untouched], before[untouched])
    assert not torch.equal(pfc.weight.cpu()[index], before[index])


# -- evaluators fed device tensors -------------------------------------------------------------
def test_face_and_attribute_evaluators_take_device_outputs(tmp_path, device):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(40, 16, generator=g)
    feats[1::2] = feats[0::2] + 0.8 * torch.randn(20, 16, generator=g)  # pairs: same + noise
    feats[21::4] = torch.randn(5, 16, generator=g)  # some pairs of different people
    issame = [(i * 2 + 1) % 4 != 1 or i < 10 for i in range(20)]
    results = []
    for source in (feats, feats.to(device)):
        evaluator = FaceEvaluator(issame, "pairs", None)
        evaluator.reset()
        evaluator.process({}, source[:16])
        evaluator.process({}, source[16:])
        results.append(evaluator.evaluate())
    assert results[0] == results[1] and 0 < results[0]["Accuracy"] <= 100

    gts = (torch.rand(30, 4, generator=g) < 0.4).float()
    probs = (gts * 0.5 + torch.rand(30, 4, generator=g) * 0.6).clamp(0, 1)
    results = []
    for to in ("cpu", device):
        evaluator = AttrEvaluator(["a", "b", "c", "d"], 0.5, None, "Toy")
        for start in range(0, 30, 8):
            inputs = {"targets": gts[start : start + 8].to(to)}
            evaluator.process(inputs, probs[start : start + 8].to(to))
        results.append(evaluator.evaluate())
    assert results[0] == results[1] and results[0]["mA"] > 50


def test_exact_evaluation_on_the_device_equals_the_cpu(device):
    g = torch.Generator().manual_seed(0)
    num_ids, per_id = 40, 6
    centres = torch.nn.functional.normalize(torch.randn(num_ids, 64, generator=g), dim=1)
    pids = torch.arange(num_ids).repeat_interleave(per_id)
    feats = centres[pids] + 0.2 * torch.randn(len(pids), 64, generator=g)
    camids = torch.arange(len(pids)) % 3
    query = torch.arange(len(pids)) % per_id == 0
    labels = (pids[query], pids[~query], camids[query], camids[~query])
    on_cpu = evaluate_rank(
        None, *labels, query_features=feats[query], gallery_features=feats[~query], chunk_size=16
    )
    on_device = evaluate_rank(
        None,
        *labels,
        query_features=feats[query].to(device),
        gallery_features=feats[~query].to(device),
        chunk_size=16,
    )
    np.testing.assert_allclose(np.asarray(on_device.cmc), np.asarray(on_cpu.cmc), atol=1e-6)
    assert on_device.mAP == pytest.approx(on_cpu.mAP, abs=1e-6)
    assert on_device.mINP == pytest.approx(on_cpu.mINP, abs=1e-6)
    assert 0.3 < on_cpu.mAP < 0.9  # neither trivial nor hopeless (about 0.56)


# -- export of a model trained on the device ---------------------------------------------------
def test_export_of_a_device_trained_model_passes_the_parity_check(synthetic_root, tmp_path, device):
    pytest.importorskip("onnxruntime")
    from fastreid.data import build_reid_train_loader
    from fastreid.export.onnx import ONNXRuntimeRunner, export_onnx
    from fastreid.export.verify import synthetic_images, verify_export
    from fastreid.modeling import build_model
    from fastreid.solver import build_optimizer

    from .conftest import tiny_config

    cfg = tiny_config(synthetic_root, str(tmp_path), **{"MODEL.DEVICE": device})
    loader = build_reid_train_loader(cfg)
    cfg.MODEL.HEADS.NUM_CLASSES = loader.dataset.num_classes
    model = build_model(cfg)
    trainer = SimpleTrainer(model, loader, build_optimizer(cfg, model), log_period=100)
    trainer.train(0, 1, 3)
    model.eval()
    assert next(model.parameters()).device.type == device
    path = export_onnx(model, tmp_path / "model.onnx", (64, 32))
    runner = ONNXRuntimeRunner(path, providers=["CPUExecutionProvider"])
    result = verify_export(model, runner, synthetic_images(4, (64, 32)), "ONNX Runtime", log=False)
    assert result.min_cosine >= 0.999, result.summary()
