"""The local lanes (models/scheduler.py): worker processes that do not depend on a model."""
from __future__ import annotations

import os
import platform
import signal
import sys

import pytest

from bbzip.cli.main import main
from bbzip.models import malloc, scheduler
from bbzip.models.scheduler import Job, WorkerLost, run_in_order


def _who(model, tag: int, on_images=None) -> tuple:
    """A job: the model it was run with, its tag and the process it ran in."""
    return model, tag, os.getpid()


def _jobs(count: int) -> list[Job]:
    return [Job(_who, (tag,), 1) for tag in range(count)]


def test_workers_are_handed_each_model_with_its_first_job_there():
    """One pool of workers serves jobs with no model, then with one model, then another: each
    job runs with the model it was given, in a worker process, and the results come in order."""
    scheduler.start_workers(2)
    for model in (None, {"name": "first"}, {"name": "second"}, {"name": "first"}):
        results = list(run_in_order(model, _jobs(6), cores=2, workers_only=True))
        assert [tag for _, tag, _ in results] == list(range(6))
        assert all(got == model for got, _, _ in results)
        assert all(pid != os.getpid() for *_, pid in results)


def test_this_process_takes_jobs_too_unless_told_not_to():
    results = list(run_in_order({"name": "m"}, _jobs(8), cores=2))
    assert [tag for _, tag, _ in results] == list(range(8)) and all(got == {"name": "m"} for got, _, _ in results)


def _dies_the_first_time(model, marker: str, on_images=None) -> int:
    """A job whose worker is killed (SIGKILL) the first time it runs: as the system's OOM killer
    would end it."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def _always_dies(model, on_images=None):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_job_whose_worker_dies_runs_again_on_fresh_workers(tmp_path):
    """As Dask retries a lost worker's job: the local pool is replaced and the job run again; the
    other jobs give their results as before, in order."""
    jobs = [Job(_who, (0,), 1), Job(_dies_the_first_time, (str(tmp_path / "died"),), 1), Job(_who, (2,), 1)]
    results = list(run_in_order({"name": "m"}, jobs, cores=2, workers_only=True))
    assert (tmp_path / "died").exists() and results[0][1] == 0 and results[2][1] == 2
    assert results[1] != os.getpid()


def test_a_job_that_kills_every_worker_is_an_error_not_a_hang():
    with pytest.raises(WorkerLost, match="ended abruptly 3 times"):
        list(run_in_order({"name": "m"}, [Job(_always_dies, (), 1)] * 2, cores=2, workers_only=True))
    # and the pool after it still works
    assert [tag for _, tag, _ in run_in_order(None, _jobs(3), cores=2, workers_only=True)] == [0, 1, 2]


def _in_the_heap(model=None, on_images=None) -> bool:
    """A job: whether an array of 1 MiB comes from the heap (not a mapping of its own)."""
    import numpy as np

    held = np.ones(1 << 17)
    address = held.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, *_, name = line.split()
            low, high = (int(end, 16) for end in span.split("-"))
            if low <= address < high:
                return name == "[heap]"
    return False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_workers_keep_malloc_s_usual_thresholds_whatever_the_environment_says(monkeypatch):
    """MALLOC_TRIM_THRESHOLD_ in the environment (a process that started a local Dask cluster
    hands it on) pins glibc's mmap threshold at 128 KiB, and every temporary array of the
    coder's loops was mapped and unmapped again: a whole compress took a half as long again.
    Worker processes started with it, and bbzip's own process, put the thresholds back."""
    def fresh_pools():
        for pool in scheduler._pools.values():
            pool.shutdown()
        scheduler._pools.clear()

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    fresh_pools()
    try:
        assert list(run_in_order(None, [Job(_in_the_heap, (), 1)] * 2, cores=2, workers_only=True)) == [True, True]
    finally:
        monkeypatch.undo()
        fresh_pools()
    called = []
    monkeypatch.setattr(malloc, "usual_thresholds", lambda: called.append(True))
    monkeypatch.setattr(sys, "argv", ["bbzip", "--help"])
    with pytest.raises(SystemExit):
        main()
    assert called


def test_a_lane_that_finds_its_broken_pool_let_go_already_takes_the_fresh_one():
    """Two lanes whose workers died find the same broken pool: one lets it go and makes the
    fresh one. The other, looking in between, found no pool at all, and a run after a worker's
    death failed with "generator raised StopIteration" where it should have gone on."""
    broken = scheduler._pool(1)
    with scheduler._pools_lock:  # let go by the other lane, its fresh pool not made yet
        scheduler._pools.clear()
    broken.shutdown()
    fresh = scheduler._fresh_pool(broken, 1)
    assert fresh is not broken and fresh is scheduler._pool(1)
    assert fresh.submit(os.getpid).result() != os.getpid()
