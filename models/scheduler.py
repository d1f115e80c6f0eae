"""Jobs on every core, results in order, a bounded window in flight: on concurrent.futures.

A `Job` is one call, function(model, *args), and says how many images it covers (for progress).
`run_in_order` hands jobs to an executor as they come, keeps at most `window` of them in flight,
and yields their results in the jobs' order: every core takes the next job as soon as it is free
(the executor's queue always holds work), and what is held is a few jobs and results, whatever
the number of jobs.

The default executor is `Lanes`: `cores` threads, one coding in this process and each other one
handing its job to a worker process that holds the model (spawned, so safe whatever the parent
imported; each worker is given one core). Any object with `submit(job) -> Future` and the
context-manager protocol can stand in for it: passed as `executor`, or for every call within
`executing_on` (models/cluster.py: a Dask cluster's workers).
"""
from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

from threadpoolctl import threadpool_limits

from . import threads


@dataclass(frozen=True)
class Job:
    function: Callable  # importable by name (worker processes look it up)
    args: tuple
    images: int  # how many images it covers, for progress
    here: bool = False  # run where it is taken, not handed to an executor (work too small to send)


_elsewhere: list[Callable] = []  # executing_on's executor makers, innermost last


@contextlib.contextmanager
def executing_on(make_executor: Callable):
    """Within the block, run_in_order hands its jobs to make_executor(model) unless given one."""
    _elsewhere.append(make_executor)
    try:
        yield
    finally:
        _elsewhere.pop()


def elsewhere() -> bool:
    """Whether run_in_order hands its jobs to an executor of executing_on's (a cluster)."""
    return bool(_elsewhere)


def run_in_order(model, jobs: Iterable[Job], cores: int, on_images=None, window: int | None = None, executor=None):
    """function(model, *args) of each job, yielded in order, on `cores` cores. One core, or a
    single job, runs here with every thread it was given (and reports progress as it goes)."""
    if executor is None and _elsewhere:
        executor = _elsewhere[-1](model)
    jobs = iter(jobs)
    first = list(itertools.islice(jobs, 2))
    if executor is None and (cores <= 1 or len(first) < 2):
        with threads.limited(cores), threadpool_limits(limits=cores):
            for job in itertools.chain(first, jobs):
                yield job.function(model, *job.args, on_images)
        return
    window = window or 2 * cores
    with threads.limited(1), threadpool_limits(limits=1), (executor or Lanes(model, cores)) as lanes:
        in_flight: deque[tuple[Job, Future]] = deque()
        try:
            for job in itertools.chain(first, jobs):
                in_flight.append((job, _run_here(model, job) if job.here else lanes.submit(job)))
                if len(in_flight) >= window:
                    yield _done(*in_flight.popleft(), on_images)
            while in_flight:
                yield _done(*in_flight.popleft(), on_images)
        finally:  # done, failed, or the consumer stopped early (Ctrl-C, SIGTERM): nothing more is started
            for _, future in in_flight:
                future.cancel()


def _run_here(model, job: Job) -> Future:
    """The job run in this thread, as a done Future."""
    future = Future()
    try:
        future.set_result(job.function(model, *job.args))
    except Exception as error:  # handed on as an executor's job would hand it on
        future.set_exception(error)
    return future


def _done(job: Job, future: Future, on_images):
    result = future.result()
    if on_images:
        on_images(job.images)
    return result


class Lanes:
    """`cores` lanes, each taking the next job when it is free: one in this process, the others
    in worker processes that hold the model."""

    def __init__(self, model, cores: int):
        self._model = model
        self._workers = _pool(model, cores - 1)
        self._lane = threading.local()
        self._numbers = itertools.count()
        self._threads = ThreadPoolExecutor(cores, thread_name_prefix="bbzip-lane", initializer=self._number_lane)

    def _number_lane(self) -> None:
        self._lane.here = next(self._numbers) == 0

    def submit(self, job: Job) -> Future:
        return self._threads.submit(self._run, job)

    def _run(self, job: Job):
        if self._lane.here:
            return job.function(self._model, *job.args)
        return self._workers.submit(_in_worker, job.function, *job.args).result()

    def __enter__(self) -> "Lanes":
        return self

    def __exit__(self, *exc) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)


_pools: dict = {}  # (id of the model, workers) -> the pool; kept for the next call (compress, then its check)


def _pool(model, workers: int) -> ProcessPoolExecutor:
    key = (id(model), workers)
    if key not in _pools:
        for old in _pools.values():
            old.shutdown()
        _pools.clear()
        context = multiprocessing.get_context("spawn")
        _pools[key] = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(model,))
    return _pools[key]


_worker_model = None


def _start_worker(model) -> None:
    """A worker process: the model, and one core (BLAS too)."""
    global _worker_model
    _worker_model = model
    threads.set_budget(1)
    threadpool_limits(limits=1)


def _in_worker(function, *args):
    return function(_worker_model, *args)
