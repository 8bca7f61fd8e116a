"""Trials that train as a DDP group: ``--workers-per-trial N`` (``TUNE.WORKERS_PER_TRIAL``).

Ray reserves one placement group per trial: an empty bundle for the trial's coordinator (the
function Ray Tune runs) and one bundle per process. The coordinator starts one Ray actor per
bundle; the actors join one ``torch.distributed`` group (gloo on the CPU, NCCL when the trial
trains on CUDA; Ray gives each actor its own GPU, so every rank uses ``cuda:0``) and each
trains the trial's :class:`TuneTrainer`. Rank 0 evaluates and saves the trainer state exactly
as a one-process trial does; the coordinator hands its reports and checkpoints to Ray Tune, so
the search sees the same metrics and checkpoints either way. A restored trial hands the
checkpoint's files to every rank. When any rank fails the trial fails with that rank's error
and the other ranks are stopped; nothing waits on a dead peer.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
from datetime import timedelta
from typing import Any, Dict, List, Optional, Tuple

from fastreid.config import CfgNode

__all__ = ["TrialWorker", "run_distributed_trial"]

# How long a rank waits for its peers in one collective before the trial fails.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)

Files = Dict[str, bytes]


def read_folder(folder: str) -> Files:
    """Every file below ``folder`` as ``{relative path: bytes}`` (checkpoints are small folders)."""
    files: Files = {}
    for top, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(top, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def write_folder(files: Files, folder: str) -> str:
    for rel, data in files.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return folder


class TrialWorker:
    """One rank of a DDP trial (a Ray actor with two threads: one trains, the other lets the
    coordinator collect rank 0's reports)."""

    def __init__(self) -> None:
        self._reports: queue.Queue[Tuple[Dict[str, float], Optional[Files]]] = queue.Queue()

    def rendezvous(self) -> Tuple[str, int]:
        """This node's address and a free port on it (rank 0 hosts the group's store)."""
        import ray

        from fastreid.engine.launch import find_free_port

        return ray.util.get_node_ip_address(), find_free_port()

    def next_report(self, timeout: float) -> Optional[Tuple[Dict[str, float], Optional[Files]]]:
        try:
            return self._reports.get(timeout=timeout)
        except queue.Empty:
            return None

    def _report(self, metrics: Dict[str, float], checkpoint_dir: Optional[str]) -> None:
        files = read_folder(checkpoint_dir) if checkpoint_dir else None
        self._reports.put((dict(metrics), files))

    def train(
        self,
        cfg: CfgNode,
        rank: int,
        world_size: int,
        address: str,
        port: int,
        checkpoint: Optional[Files],
        datasets_root: str,
    ) -> None:
        import torch
        import torch.distributed as dist

        from fastreid.engine import default_setup
        from fastreid.engine.output_dir import release_output_dir

        from .trainer import TuneTrainer, restore_trainer_state

        if datasets_root:
            os.environ["FASTREID_DATASETS"] = datasets_root
        cuda = str(cfg.MODEL.DEVICE).startswith("cuda") and torch.cuda.is_available()
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            init_method=f"tcp://{address}:{port}",
            rank=rank,
            world_size=world_size,
            timeout=PROCESS_GROUP_TIMEOUT,
        )
        try:
            if cuda:
                torch.cuda.set_device(0)  # Ray shows each rank its own GPU only
            default_setup(cfg)
            report = self._report if rank == 0 else _no_report
            trainer = TuneTrainer(cfg, report=report)
            if checkpoint is not None:
                folder = tempfile.mkdtemp(prefix="fasttune-restore-")
                try:
                    restore_trainer_state(trainer, write_folder(checkpoint, folder))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            trainer.train()
        finally:
            if rank == 0:
                release_output_dir(cfg.OUTPUT_DIR)
            dist.destroy_process_group()


def _no_report(metrics: Dict[str, float], checkpoint_dir: Optional[str]) -> None:
    """Ranks other than 0 take part in evaluation and checkpointing but report nothing."""


def _worker_bundles(workers: int) -> Tuple[Any, List[int]]:
    """The trial's placement group and the bundle index of each rank (None, [] outside one)."""
    from ray.util import get_current_placement_group

    group = get_current_placement_group()
    if group is None:
        return None, []
    count = len(group.bundle_specs)
    return group, list(range(count - workers, count))


def run_distributed_trial(
    cfg: CfgNode,
    workers: int,
    checkpoint_dir: Optional[str],
    report: Any,
    datasets_root: str = "",
) -> None:
    """Train ``cfg`` as a ``workers``-process DDP group and pass rank 0's reports (metrics and
    checkpoint folder) to ``report``, as :class:`TuneTrainer` does in a one-process trial."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group, bundles = _worker_bundles(workers)
    actor_cls = ray.remote(TrialWorker)
    actors = []
    for rank in range(workers):
        if group is not None:
            spec = group.bundle_specs[bundles[rank]]
            options: Dict[str, Any] = {
                "num_cpus": spec.get("CPU", 0),
                "num_gpus": spec.get("GPU", 0),
                "scheduling_strategy": PlacementGroupSchedulingStrategy(
                    group, placement_group_bundle_index=bundles[rank]
                ),
            }
        else:
            options = {"num_cpus": 1}
        actors.append(actor_cls.options(max_concurrency=2, **options).remote())
    try:
        address, port = ray.get(actors[0].rendezvous.remote())
        saved = read_folder(checkpoint_dir) if checkpoint_dir else None
        cfg_ref, saved_ref = ray.put(cfg), ray.put(saved)
        runs = [
            actor.train.remote(cfg_ref, rank, workers, address, port, saved_ref, datasets_root)
            for rank, actor in enumerate(actors)
        ]
        while True:
            done, _ = ray.wait(runs, num_returns=len(runs), timeout=0)
            finished = len(done) == len(runs)
            item = ray.get(actors[0].next_report.remote(0.0 if finished else 1.0))
            if item is not None:
                metrics, files = item
                folder = tempfile.mkdtemp(prefix="fasttune-ckpt-") if files is not None else None
                try:
                    report(metrics, write_folder(files, folder) if folder else None)
                finally:
                    if folder is not None:
                        shutil.rmtree(folder, ignore_errors=True)
                continue
            ray.get(done)  # the first failed rank's error ends the trial
            if finished:
                return
    finally:
        for actor in actors:
            ray.kill(actor)
