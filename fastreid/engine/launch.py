"""Starting one process per GPU (or per CPU slot) and joining them in torch.distributed.

* ``launch(main, num_gpus_per_machine=N)`` spawns N local processes (NCCL on GPUs, gloo
  without a GPU, where N means N CPU processes) and calls ``main(*args)`` in each.
* Several machines: run the same command on each with ``--num-machines M --machine-rank R
  --dist-url tcp://HOST:PORT`` (HOST is machine 0).
* Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set), processes already exist:
  ``launch`` joins the group from the environment and calls ``main`` directly.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fastreid.utils import comm

__all__ = ["launch", "find_free_port", "default_backend"]

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


def find_free_port() -> int:
    """A TCP port that is free on this machine right now."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def default_backend(num_local_processes: int) -> str:
    """``nccl`` when every local process gets its own GPU, else ``gloo`` (CPU processes)."""
    if torch.cuda.is_available() and torch.cuda.device_count() >= num_local_processes:
        return "nccl"
    return "gloo"


def _under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str = "auto",
    args: Sequence[Any] = (),
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
    backend: str = "auto",
) -> Any:
    """Run ``main_func(*args)`` in every process of the job.

    Args:
        main_func: a picklable (module-level) function.
        num_gpus_per_machine: processes on this machine (GPUs; CPU processes if none).
        num_machines, machine_rank: multi-machine set-up (``machine_rank`` 0 hosts the store).
        dist_url: ``tcp://HOST:PORT``, ``env://`` or ``auto`` (a free local port; one machine).
        args: positional arguments of ``main_func``.
        timeout: collective-operation timeout.
        backend: ``nccl``, ``gloo`` or ``auto`` (see :func:`default_backend`).

    Returns:
        ``main_func``'s return value when it runs in this process (single process / torchrun).
    """
    if _under_torchrun():
        return _torchrun_worker(main_func, args, timeout, backend)

    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError(
                "--dist-url auto works on one machine only; pass tcp://HOST:PORT of machine 0."
            )
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logging.getLogger(__name__).warning(
            "file:// init across machines needs a shared file system."
        )
    if backend == "auto":
        backend = default_backend(num_gpus_per_machine)
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(
            main_func,
            world_size,
            num_gpus_per_machine,
            machine_rank,
            backend,
            dist_url,
            tuple(args),
            timeout,
        ),
        daemon=False,
        start_method="spawn",
    )
    return None


def _set_local_group(num_machines: int, num_per_machine: int, machine_rank: int) -> None:
    # Every process must create every group, in the same order.
    for i in range(num_machines):
        ranks = list(range(i * num_per_machine, (i + 1) * num_per_machine))
        group = dist.new_group(ranks)
        if i == machine_rank:
            comm.set_local_process_group(group)


def _distributed_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_per_machine: int,
    machine_rank: int,
    backend: str,
    dist_url: str,
    args: Sequence[Any],
    timeout: datetime.timedelta,
) -> None:
    global_rank = machine_rank * num_per_machine + local_rank
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    else:
        # N CPU processes share the cores: one thread pool each of cores // N threads.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_per_machine))
    try:
        dist.init_process_group(
            backend=backend,
            init_method=dist_url,
            world_size=world_size,
            rank=global_rank,
            timeout=timeout,
        )
    except Exception as e:
        raise RuntimeError(
            f"Process {global_rank} could not join the process group at {dist_url} ({backend}): {e}. "
            "Check --dist-url (reachable HOST:PORT of machine 0, free port) and --num-machines."
        ) from e
    _set_local_group(world_size // num_per_machine, num_per_machine, machine_rank)
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()


def _torchrun_worker(
    main_func: Callable[..., Any], args: Sequence[Any], timeout: datetime.timedelta, backend: str
) -> Any:
    local_rank = int(os.environ["LOCAL_RANK"])
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    world_size = int(os.environ["WORLD_SIZE"])
    if backend == "auto":
        backend = default_backend(local_size)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    _set_local_group(
        world_size // local_size,
        local_size,
        int(os.environ.get("GROUP_RANK", dist.get_rank() // local_size)),
    )
    comm.synchronize()
    try:
        return main_func(*args)
    finally:
        dist.destroy_process_group()
