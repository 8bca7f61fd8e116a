#!/usr/bin/env python
"""One-command GPU check: every CUDA path of fastreid, measured, in a few minutes.

Sections (each one independent; a failure is recorded and the next section still runs):
  train     BoT R50 256x128 training img/s at batch 64 (``train_b256``: 256) for every mode of
            ``bench_train.CUDA_MODES``: plain fp32 / AMP fp16 / AMP bf16 (torch's default
            optimizer kernels, NCHW), then fused optimizer (SOLVER.FUSED), channels_last
            (MODEL.CHANNELS_LAST) and the CUDA graph (SOLVER.CUDA_GRAPH), alone and together
            (``--compile`` adds torch.compile); each graph row's losses are compared with its
            eager twin (``graph parity``), and the issue's speed goals are reported
  eval      exact evaluation at MSMT scale (11 659 x 82 161, 2048-d) on the GPU, chunked:
            seconds and peak GPU memory, metrics checked against the CPU path on a subset
  faiss     faiss-gpu top-100 search against an exact torch top-k (when faiss has GPUs)
  tensorrt  ONNX -> TensorRT fp32 / fp16 / int8 with the cosine check and latency against
            PyTorch (when tensorrt is installed)
  ddp       NCCL DDP over the GPUs present (world size 1 on one GPU): step time and identical
            weights on every rank

    python benchmarks/gpu_check.py               # on a CUDA machine (about 4 minutes)
    python benchmarks/gpu_check.py --cpu-smoke   # the same code paths on the CPU, tiny sizes

Without CUDA (and without ``--cpu-smoke``) it says so and exits 0. Prints a table and writes
JSON (default ``benchmarks/results/gpu_check_<gpu name>.json`` on a GPU,
``benchmarks/results/gpu_check.json`` otherwise).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Dict, List

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
DEFAULT_OUTPUT = os.path.join(BENCHMARKS, "results", "gpu_check.json")
for path in (ROOT, BENCHMARKS):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_eval  # noqa: E402
import bench_train  # noqa: E402

from fastreid.evaluation import evaluate_rank  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def check_train(
    device: str, smoke: bool, compile_model: bool, batch: int = 64
) -> List[Dict[str, Any]]:
    if smoke:
        if batch != 64:
            return [{"check": f"train b{batch}", "skipped": "--cpu-smoke times batch 8 only"}]
        plans = [(dict(depth="18x", height=64, width=32, batch=8, device=device), 1, 2)]
        modes: List[str] = ["fp32", "bf16", "channels_last", "channels_last+bf16+fused"]
    else:
        base = dict(depth="50x", height=256, width=128, batch=batch, device=device)
        plans = [(base, 5, 20 if batch <= 64 else 10)]
        modes = list(bench_train.CUDA_MODES)
        if compile_model:
            modes.append("compile+amp_bf16+fused")
    rows = []
    for base, warmup, iters in plans:
        for mode in modes:
            try:
                row = bench_train.run_row(dict(base, mode=mode), warmup, iters)
            finally:
                gc.collect()  # the trainer and its CUDA graph (a reference cycle) go now
                if device == "cuda":
                    torch.cuda.empty_cache()
            name = f"train {mode}" if smoke else f"train b{base['batch']} {mode}"
            detail = (
                f"BoT R{base['depth'][:-1]} {base['height']}x{base['width']} batch "
                f"{base['batch']}; loss {row['first_loss']} -> {row['last_loss']}"
            )
            if row.get("graph_captures"):
                detail += f"; graph captured {row['graph_captures']}x"
            rows.append(
                {
                    "check": name,
                    "value": row["images_per_sec"],
                    "unit": "img/s",
                    "peak_mb": row["peak_memory_mb"],
                    "detail": detail,
                    "batch": base["batch"],
                    "mode": mode,
                    "first_loss": row["first_loss"],
                    "last_loss": row["last_loss"],
                }
            )
    if not smoke:
        rows.extend(_graph_parity(rows))
    return rows


def _graph_parity(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The CUDA-graph rows train from the same seed on the same batch as their eager twins:
    their losses must agree (the first steps are eager, later ones replayed)."""
    found = []
    by_key = {(r["batch"], r["mode"]): r for r in rows}
    for (batch, mode), row in by_key.items():
        eager = by_key.get((batch, mode.replace("+graph", "")))
        if "+graph" not in mode or eager is None:
            continue
        delta = abs(row["last_loss"] - eager["last_loss"])
        found.append(
            {
                "check": f"graph parity b{batch} {mode}",
                "value": round(delta, 5),
                "unit": "|last loss - eager|",
                "detail": f"graph {row['last_loss']} vs eager {eager['last_loss']} after the "
                "same steps",
                # cuDNN benchmark mode may pick other kernels per run: rounding-level
                # differences in the first loss, small ones after the steps.
                "ok": bool(
                    abs(row["first_loss"] - eager["first_loss"])
                    <= 1e-3 * max(1.0, abs(eager["first_loss"]))
                    and delta <= 1e-2 * max(1.0, abs(eager["last_loss"]))
                ),
            }
        )
    return found


def goals(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Issue goals read off the train rows (reported, not pass/fail of the check)."""
    speed = {(r.get("batch"), r.get("mode")): r["value"] for r in rows if "mode" in r}
    best_bf16 = max((v for (b, m), v in speed.items() if b == 64 and "bf16" in m), default=None)
    fp32 = speed.get((64, "fp32"))
    best_any = max((v for (b, _), v in speed.items() if b == 64), default=None)
    out = []
    if best_bf16 is not None:
        out.append({"goal": "BoT R50 b64 AMP bf16 >= 6000 img/s", "value": best_bf16,
                    "met": best_bf16 >= 6000})  # fmt: skip
    if best_bf16 is not None and fp32:
        ratio = round(best_bf16 / fp32, 2)
        out.append({"goal": "best AMP bf16 >= 1.5x plain fp32 (b64)", "value": ratio,
                    "met": ratio >= 1.5})  # fmt: skip
    if best_any is not None and fp32:
        out.append({"goal": "best mode / plain fp32 (b64)", "value": round(best_any / fp32, 2)})
    return out


def _peak_mb(device: str) -> Any:
    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return ""  # the process RSS would mostly measure the benchmark's own feature generation


def check_eval(device: str, smoke: bool) -> List[Dict[str, Any]]:
    scale = "quick" if smoke else "msmt"
    query, gallery = bench_eval.make_data(scale)
    labels = (query.pids, gallery.pids, query.camids, gallery.camids)
    qf = torch.from_numpy(query.materialise())
    gf = torch.from_numpy(gallery.materialise())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    q_dev, g_dev = qf.to(device), gf.to(device)
    _sync(device)
    start = time.perf_counter()
    result = evaluate_rank(
        None, *labels, query_features=q_dev, gallery_features=g_dev, chunk_size=2048
    )
    _sync(device)
    seconds = time.perf_counter() - start
    # The same queries' metrics on the CPU path: the device must not change a figure.
    subset = slice(0, min(len(qf), 300))
    on_device = evaluate_rank(
        None,
        labels[0][subset],
        *labels[1:2],
        labels[2][subset],
        labels[3],
        query_features=q_dev[subset],
        gallery_features=g_dev,
    )
    on_cpu = evaluate_rank(
        None,
        labels[0][subset],
        *labels[1:2],
        labels[2][subset],
        labels[3],
        query_features=qf[subset],
        gallery_features=gf,
    )
    map_delta = abs(on_device.mAP - on_cpu.mAP) * 100
    num_q, num_g = len(qf), len(gf)
    return [
        {
            "check": "eval exact",
            "value": round(seconds, 3),
            "unit": "s",
            "peak_mb": _peak_mb(device),
            "detail": f"{num_q} x {num_g} x {qf.shape[1]}: R1 {result.cmc[0] * 100:.2f} "
            f"mAP {result.mAP * 100:.2f}; |mAP device - cpu| on 300 queries {map_delta:.1e}",
            "ok": bool(map_delta < 1e-3),
        }
    ]


def check_faiss(device: str, smoke: bool) -> List[Dict[str, Any]]:
    try:
        import faiss
    except ImportError:
        return [{"check": "faiss-gpu top-k", "skipped": "faiss is not installed"}]
    if device == "cuda" and not (hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0):
        return [{"check": "faiss-gpu top-k", "skipped": "faiss has no GPU support (faiss-cpu)"}]
    query, gallery = bench_eval.make_data("quick" if smoke else "market")
    qf, gf = query.materialise(), gallery.materialise()
    k = 20 if smoke else 100
    index = faiss.IndexFlatIP(qf.shape[1])
    if device == "cuda":
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(gf)
    start = time.perf_counter()
    _, found = index.search(qf, k)
    seconds = time.perf_counter() - start
    exact = torch.topk(torch.from_numpy(qf) @ torch.from_numpy(gf).T, k, dim=1).indices.numpy()
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)])
    return [
        {
            "check": "faiss-gpu top-k" if device == "cuda" else "faiss top-k (cpu)",
            "value": round(seconds, 3),
            "unit": "s",
            "detail": f"top-{k} of {len(qf)} x {len(gf)}; overlap with exact top-k {overlap:.4f}",
            "ok": bool(overlap > 0.999),
        }
    ]


def _calibrated_model(smoke: bool, device: str, num_classes: int = 10):
    """A BoT model whose BN statistics are measured on test-like images (random weights
    otherwise), so its activations stay in a trained model's range for export checks."""
    from fastreid.config import get_cfg
    from fastreid.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", "Base-bagtricks.yml"))
    cfg.MODEL.DEVICE = device
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.BACKBONE.DEPTH = "18x" if smoke else "50x"
    cfg.MODEL.BACKBONE.FEAT_DIM = 512 if smoke else 2048
    cfg.MODEL.HEADS.NUM_CLASSES = num_classes
    size = (64, 32) if smoke else (256, 128)
    torch.manual_seed(0)
    model = build_model(cfg)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model.backbone(
                (torch.rand(16, 3, *size, device=device) * 255 - model.pixel_mean) / model.pixel_std
            )
    return model.eval(), size


def check_tensorrt(device: str, smoke: bool) -> List[Dict[str, Any]]:
    from fastreid.export.onnx import export_onnx
    from fastreid.export.tensorrt import TensorRTRunner, build_engine, tensorrt_available
    from fastreid.export.verify import synthetic_images, verify_export

    available, reason = tensorrt_available()
    if not available or device != "cuda":
        return [{"check": "tensorrt", "skipped": reason if not available else "needs CUDA"}]
    model, size = _calibrated_model(smoke, device)
    images = synthetic_images(8, size)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        onnx_path = export_onnx(model, os.path.join(work, "model.onnx"), size)
        calib_dir = os.path.join(work, "calib")
        os.makedirs(calib_dir)
        from PIL import Image

        for i, image in enumerate(synthetic_images(32, size, seed=1)):
            Image.fromarray(image.transpose(1, 2, 0).astype(np.uint8)).save(
                os.path.join(calib_dir, f"{i}.png")
            )
        for mode, threshold in (("fp32", 0.999), ("fp16", 0.99), ("int8", 0.95)):
            engine = os.path.join(work, f"model_{mode}.engine")
            build_engine(
                onnx_path,
                engine,
                size,
                mode=mode,
                calibration_dir=calib_dir if mode == "int8" else None,
                calibration_cache=os.path.join(work, "calib.cache"),
            )
            result = verify_export(
                model, TensorRTRunner(engine), images, f"TensorRT {mode}", threshold, log=False
            )
            rows.append(
                {
                    "check": f"tensorrt {mode}",
                    "value": round(result.export_latency_ms, 3),
                    "unit": "ms/batch",
                    "detail": f"min cosine {result.min_cosine:.6f}; PyTorch "
                    f"{result.torch_latency_ms:.3f} ms at batch {len(images)}",
                    "ok": result.min_cosine >= threshold,
                }
            )
    return rows


def _ddp_worker(rank: int, world: int, port: int, device: str, smoke: bool, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from fastreid.engine import CallbackHook, SimpleTrainer

    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    if device == "cuda":
        torch.cuda.set_device(rank)
    torch.set_num_threads(1)
    batch = 8 if smoke else 64
    num_ids = batch // 4  # P x K batches, K = 4: the classifier must know every target id
    model, size = _calibrated_model(
        smoke, device if device == "cpu" else f"cuda:{rank}", num_classes=num_ids
    )
    model.train()
    optimizer = build_optimizer_for(model)
    ddp = DistributedDataParallel(model, device_ids=[rank] if device == "cuda" else None)
    generator = torch.Generator().manual_seed(100 + rank)  # every rank its own images
    targets = torch.arange(num_ids).repeat_interleave(4)
    if int(targets.max()) >= model.heads.num_classes:  # checked before the device sees it
        raise ValueError(
            f"DDP check: target ids up to {int(targets.max())} for a classifier of "
            f"{model.heads.num_classes} classes"
        )
    data = {
        "images": (torch.rand(batch, 3, *size, generator=generator) * 255).to(model.device),
        "targets": targets.to(model.device),
        "camids": torch.zeros(batch, dtype=torch.long, device=model.device),
    }
    trainer = SimpleTrainer(ddp, iter(lambda: data, None), optimizer, log_period=1000)
    steps = 3 if smoke else 20
    stamps: List[float] = []

    def stamp(_trainer: Any) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    trainer.register_hooks([CallbackHook(after_step=stamp)])
    trainer.train(0, 1, steps)
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    gathered = [torch.zeros_like(checksum) for _ in range(world)]
    dist.all_gather(gathered, checksum)
    if rank == 0:
        step = (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"step_s": step, "checksums": [float(c) for c in gathered]}, f)
    dist.destroy_process_group()


def build_optimizer_for(model):
    from fastreid.config import get_cfg
    from fastreid.solver import build_optimizer

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", "Base-bagtricks.yml"))
    return build_optimizer(cfg, model)


def check_ddp(device: str, smoke: bool) -> List[Dict[str, Any]]:
    import torch.multiprocessing as mp

    from fastreid.engine.launch import find_free_port

    world = torch.cuda.device_count() if device == "cuda" else 2
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "ddp.json")
        mp.spawn(_ddp_worker, args=(world, find_free_port(), device, smoke, out), nprocs=world)
        with open(out, encoding="utf-8") as f:
            result = json.load(f)
    checksums = result["checksums"]
    same = max(checksums) - min(checksums) <= 1e-6 * max(1.0, abs(checksums[0]))
    return [
        {
            "check": f"ddp {'nccl' if device == 'cuda' else 'gloo'} x{world}",
            "value": round(result["step_s"], 4),
            "unit": "s/step",
            "detail": "weights identical on every rank" if same else f"ranks differ: {checksums}",
            "ok": same,
        }
    ]


SECTIONS: Dict[str, Callable[..., List[Dict[str, Any]]]] = {
    "train": check_train,
    "eval": check_eval,
    "ddp": check_ddp,
    "train_b256": check_train,
    "faiss": check_faiss,
    "tensorrt": check_tensorrt,
}


def run_checks(
    device: str,
    smoke: bool,
    sections: List[str],
    compile_model: bool,
    progress: Callable[[List[Dict[str, Any]]], None] = lambda rows: None,
) -> List[Dict]:
    """Run ``sections`` in order; ``progress(rows so far)`` after each (the JSON is rewritten
    then, so a run stopped by a time limit keeps the sections it finished)."""
    rows: List[Dict[str, Any]] = []
    for name in sections:
        print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            if name == "train":
                found = check_train(device, smoke, compile_model)
            elif name == "train_b256":
                found = check_train(device, smoke, compile_model, batch=256)
            else:
                found = SECTIONS[name](device, smoke)
        except Exception as exc:  # one failing section must not cost the others' figures
            found = [
                {
                    "check": name,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=4),
                }
            ]
        for row in found:
            row.setdefault("section", name)
            row["section_seconds"] = round(time.perf_counter() - start, 1)
        rows.extend(found)
        progress(rows)
    return rows


def table(rows: List[Dict[str, Any]]) -> str:
    from tabulate import tabulate

    lines = []
    for r in rows:
        status = r.get("error") or r.get("skipped")
        if status:
            kind = "ERROR" if "error" in r else "skipped"
            lines.append((r["check"], "", "", "", kind, str(status)[:90]))
        else:
            ok = {True: "ok", False: "FAIL"}.get(r.get("ok"), "")
            lines.append(
                (r["check"], r["value"], r["unit"], r.get("peak_mb", ""), ok, r.get("detail", ""))
            )
    return tabulate(lines, headers=["check", "value", "unit", "peak MB", "status", "detail"])


def _write_json(path: str, report: Dict[str, Any]) -> None:
    """Write ``report`` to ``path`` atomically (a temp file, then a rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


def gpu_slug() -> str:
    """The first GPU's name as a file-name part, e.g. ``nvidia_h200``."""
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="run every section's code path on the CPU, tiny"
    )
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--compile", action="store_true", help="also time torch.compile training")
    parser.add_argument(
        "--output", default=None, help="JSON file (default: results/gpu_check.json)"
    )
    args = parser.parse_args(argv)

    output = args.output or DEFAULT_OUTPUT
    meta = {
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/gpu_check.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    if not args.cpu_smoke and not torch.cuda.is_available():
        message = "No CUDA device: nothing to check (--cpu-smoke runs the code paths on the CPU)."
        print(message)
        report = {"meta": meta, "skipped": message, "results": []}
    else:
        device = "cpu" if args.cpu_smoke else "cuda"
        if device == "cuda":
            meta["gpu"] = torch.cuda.get_device_name(0)
            meta["gpus"] = torch.cuda.device_count()
            if args.output is None:
                output = os.path.join(BENCHMARKS, "results", f"gpu_check_{gpu_slug()}.json")

        def progress(rows: List[Dict[str, Any]]) -> None:
            partial = {"meta": meta, "device": device, "results": rows, "goals": goals(rows)}
            _write_json(output, dict(partial, finished=False))

        rows = run_checks(device, args.cpu_smoke, args.sections, args.compile, progress)
        print(table(rows))
        report = {"meta": meta, "device": device, "results": rows, "goals": goals(rows)}
        report["finished"] = True
        for goal in report["goals"]:
            met = "" if "met" not in goal else (" (met)" if goal["met"] else " (NOT met)")
            print(f"goal: {goal['goal']}: {goal['value']}{met}")
    _write_json(output, report)
    print(f"wrote {output}")
    failed = [r for r in report["results"] if "error" in r or r.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
