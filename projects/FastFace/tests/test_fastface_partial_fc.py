"""PartialFC against a plain full softmax written here, on one and on two (gloo) processes."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from projects.FastFace.fastface.partial_fc import PartialFC, shard_range

C, D, N = 37, 8, 12


def reference(features, targets, weight, s=64.0, m=0.4, columns=None):
    """Plain CosFace softmax over ``weight`` rows (all, or the given class columns)."""
    w = weight if columns is None else weight[columns]
    t = targets if columns is None else torch.searchsorted(columns, targets)
    cos = F.linear(F.normalize(features), F.normalize(w))
    logits = (cos - m * F.one_hot(t, w.shape[0])) * s
    return F.cross_entropy(logits, t)


def close(a, b, rel=2e-5):
    """Equal up to float32 rounding, relative to the largest entry."""
    scale = b.abs().max().clamp(min=1e-12)
    assert ((a - b).abs().max() / scale).item() <= rel, ((a - b).abs().max() / scale).item()


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=g), torch.randint(0, C, (N,), generator=g)


def test_shards_cover_all_classes_once():
    ranges = [shard_range(10, r, 3) for r in range(3)]
    assert ranges == [(0, 4), (4, 3), (7, 3)]


def test_rate_one_equals_full_softmax_loss_and_gradients():
    feats, targets = data()
    pfc = PartialFC(C, D, sample_rate=1.0, scale=64, margin=0.4)
    opt = pfc.build_optimizer(lr=0.1, momentum=0.9, weight_decay=0.0)
    weight = pfc.weight.clone().requires_grad_(True)
    f1 = feats.clone().requires_grad_(True)
    f2 = feats.clone().requires_grad_(True)
    loss = pfc(f1, targets)
    loss.backward()
    ref = reference(f2, targets, weight)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    close(f1.grad, f2.grad)
    close(pfc.sub_weight.grad, weight.grad)
    # The optimizer steps the shard itself: plain SGD on the reference weight.
    grad = pfc.sub_weight.grad.clone()
    start = pfc.weight.clone()
    opt.step()
    pfc.update()
    torch.testing.assert_close(pfc.weight, start - 0.1 * grad)
    torch.testing.assert_close(pfc.weight_mom, grad)


def test_sampled_step_keeps_positives_and_touches_only_sampled_rows():
    feats, targets = data(1)
    pfc = PartialFC(C, D, sample_rate=0.5, seed=3)
    opt = pfc.build_optimizer(lr=0.1, momentum=0.9, weight_decay=5e-4)
    before = pfc.weight.clone()
    f = feats.clone().requires_grad_(True)
    loss = pfc(f, targets)
    index = pfc._index
    assert index.numel() == int(0.5 * C)
    assert set(targets.tolist()) <= set(index.tolist())
    # The loss is the full softmax restricted to the sampled classes.
    torch.testing.assert_close(loss, reference(feats, targets, before, columns=index))
    loss.backward()
    grad = pfc.sub_weight.grad.clone()
    opt.step()
    pfc.update()
    untouched = torch.ones(C, dtype=torch.bool)
    untouched[index] = False
    assert torch.equal(pfc.weight[untouched], before[untouched])
    assert torch.count_nonzero(pfc.weight_mom[untouched]) == 0
    expected = before[index] - 0.1 * (grad + 5e-4 * before[index])
    torch.testing.assert_close(pfc.weight[index], expected)
    torch.testing.assert_close(pfc.weight_mom[index], grad + 5e-4 * before[index])


def run_steps(pfc, opt, sched, steps, seed):
    losses = []
    for k in range(steps):
        feats, targets = data(seed + k)
        loss = pfc(feats.requires_grad_(True), targets)
        loss.backward()
        opt.step()
        pfc.update()
        opt.zero_grad(set_to_none=True)
        sched.step()
        losses.append(loss.item())
    return losses


def test_exact_resume_of_centres_momentum_sampling_and_schedule(tmp_path):
    def build():
        pfc = PartialFC(C, D, sample_rate=0.3, seed=7)
        opt = pfc.build_optimizer(lr=0.2, momentum=0.9)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [3], 0.1)
        return pfc, opt, sched

    pfc, opt, sched = build()
    run_steps(pfc, opt, sched, 2, 0)
    path = tmp_path / "pfc_rank0.pth"
    torch.save(
        {"pfc": pfc.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, path
    )
    straight = run_steps(pfc, opt, sched, 4, 100)
    pfc2, opt2, sched2 = build()
    state = torch.load(path, weights_only=False)
    pfc2.load_state_dict(state["pfc"])
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    resumed = run_steps(pfc2, opt2, sched2, 4, 100)
    assert resumed == straight
    assert torch.equal(pfc.weight, pfc2.weight) and torch.equal(pfc.weight_mom, pfc2.weight_mom)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.2 * 0.1)


def test_shard_of_another_layout_is_refused():
    saved = PartialFC(C, D, rank=1, world_size=2).state_dict()
    with pytest.raises(
        ValueError, match="rank 1 of 2 processes; this run is 37 classes, rank 0 of 1"
    ):
        PartialFC(C, D).load_state_dict(saved)


def test_labels_outside_the_classes_name_the_key():
    pfc = PartialFC(C, D)
    feats, targets = data()
    targets[0] = C
    with pytest.raises(ValueError, match="MODEL.HEADS.NUM_CLASSES"):
        pfc(feats, targets)


def _worker(rank, world, port, rates, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        feats, targets = data(5)
        b = N // world
        for rate in rates:
            local_f = feats[rank * b : (rank + 1) * b].clone().requires_grad_(True)
            pfc = PartialFC(C, D, sample_rate=rate, seed=2)
            pfc.build_optimizer(lr=0.1)
            loss = pfc(local_f, targets[rank * b : (rank + 1) * b])
            loss.backward()
            index = pfc._index
            rows = torch.arange(pfc.num_local) if index is None else index
            torch.save(
                {
                    "loss": loss.detach(),
                    "feat_grad": local_f.grad,
                    "weight": pfc.weight.clone(),
                    "rows": rows + pfc.class_start,
                    "sub_grad": pfc.sub_weight.grad,
                },
                os.path.join(out_dir, f"rate{rate}_rank{rank}.pt"),
            )
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("pfc_gloo")
    mp.spawn(_worker, args=(2, _free_port(), (1.0, 0.4), str(out)), nprocs=2, join=True)
    return out


@pytest.mark.parametrize("rate", [1.0, 0.4])
def test_two_gloo_processes_equal_one_softmax_over_the_sampled_classes(two_process_results, rate):
    outs = [torch.load(two_process_results / f"rate{rate}_rank{r}.pt") for r in range(2)]
    feats, targets = data(5)
    weight = torch.cat([o["weight"] for o in outs]).requires_grad_(True)
    columns = torch.cat([o["rows"] for o in outs])
    assert set(targets.tolist()) <= set(columns.tolist())
    f = feats.clone().requires_grad_(True)
    ref = reference(f, targets, weight, columns=None if rate == 1.0 else columns)
    ref.backward()
    for o in outs:
        torch.testing.assert_close(o["loss"], ref.detach(), rtol=1e-5, atol=1e-6)
        close(o["sub_grad"], weight.grad[o["rows"]])
    # Each process gets world_size x its rows of the global gradient (DDP then averages).
    local = torch.cat([o["feat_grad"] for o in outs]) / 2
    close(local, f.grad)


def test_benchmark_case_runs_and_reports_memory():
    from projects.FastFace.benchmarks.bench_partial_fc import run_one

    row = run_one(dict(classes=1000, rate=0.3, dim=16, batch=8, steps=1, device="cpu"))
    assert row["num_sample"] == 300 and row["step_ms"] > 0 and row["peak_mb"] > 0
