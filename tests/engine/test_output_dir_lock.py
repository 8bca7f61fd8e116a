"""The OUTPUT_DIR lock: exactly one holder when many processes meet at once."""

import multiprocessing as mp
import os
import socket

import pytest

from fastreid.engine.output_dir import (
    LOCK_NAME,
    OutputDirBusyError,
    acquire_output_dir,
    release_output_dir,
)

PROCS = 6
ROUNDS = 30


def _contender(folder, barrier, results):
    for rnd in range(ROUNDS):
        barrier.wait(timeout=60)  # everyone starts the round together
        try:
            acquire_output_dir(folder)
            held = True
        except OutputDirBusyError:
            held = False
        results.put((rnd, os.getpid(), held))
        barrier.wait(timeout=60)  # all have tried before anyone lets go
        if held:
            release_output_dir(folder)
        barrier.wait(timeout=60)


def test_processes_meeting_at_a_barrier_get_exactly_one_holder_per_round(tmp_path):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(PROCS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_contender, args=(str(tmp_path), barrier, results)) for _ in range(PROCS)
    ]
    for p in procs:
        p.start()
    rows = [results.get(timeout=120) for _ in range(PROCS * ROUNDS)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rnd in range(ROUNDS):
        holders = [pid for r, pid, held in rows if r == rnd and held]
        assert len(holders) == 1, f"round {rnd}: holders {holders}"
    assert not (tmp_path / LOCK_NAME).exists()
    assert [f for f in os.listdir(tmp_path)] == []  # no temporary files left behind


def test_an_empty_lock_file_is_never_taken_as_stale(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.raises(OutputDirBusyError, match="cannot be read"):
        acquire_output_dir(str(tmp_path))
    assert (tmp_path / LOCK_NAME).read_text() == ""
    assert sorted(os.listdir(tmp_path)) == [LOCK_NAME]


def test_lock_of_a_dead_pid_on_another_host_is_not_taken(tmp_path):
    ctx = mp.get_context("fork")
    dead = ctx.Process(target=int)
    dead.start()
    dead.join()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid} not-{socket.gethostname()}\n")
    with pytest.raises(OutputDirBusyError, match=f"pid {dead.pid} on not-"):
        acquire_output_dir(str(tmp_path))
    # The same dead pid on this host is stale and taken over, the file written whole.
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()}\n")
    acquire_output_dir(str(tmp_path))
    assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    release_output_dir(str(tmp_path))
    assert os.listdir(tmp_path) == []
