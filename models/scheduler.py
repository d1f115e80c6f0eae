"""Jobs on every core, results in order, a bounded window in flight: on concurrent.futures.

A `Job` is one call, function(model, *args), and says how many images it covers (for progress).
`run_in_order` hands jobs to an executor as they come, keeps at most `window` of them in flight,
and yields their results in the jobs' order: every core takes the next job as soon as it is free
(the executor's queue always holds work), and what is held is a few jobs and results, whatever
the number of jobs.

The default executor is `Lanes`: `cores` threads, one coding in this process and each other one
handing its job to a worker process (spawned, so safe whatever the parent imported; each worker
is given one core), which holds the model from the first of its jobs it takes. The workers do
not depend on a model: they read files before one is chosen and code with it after, and
`start_workers` starts them ahead of the first job. Any object with `submit(job) -> Future` and the
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
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Iterable

from threadpoolctl import threadpool_limits

from . import malloc, threads


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


def run_in_order(model, jobs: Iterable[Job], cores: int, on_images=None, window: int | None = None, executor=None,
                 workers_only: bool = False):
    """function(model, *args) of each job, yielded in order, on `cores` cores. One core, or a
    single job, runs here with every thread it was given (and reports progress as it goes).
    `workers_only`: this process takes none of the jobs (it has work of its own with their
    results), its other cores' worker processes all of them."""
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
    with threads.limited(1), threadpool_limits(limits=1), (executor or Lanes(model, cores, workers_only)) as lanes:
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
    """`cores` lanes, each taking the next job when it is free: one in this process (unless
    `workers_only`), the others in worker processes (the pool, shared by every Lanes of this
    process), which are handed the model with the first of its jobs each of them takes."""

    def __init__(self, model, cores: int, workers_only: bool = False):
        self._model = model
        self._workers_only = workers_only
        self._key = _model_key(model)
        self._worker_count = cores - 1
        self._workers = _pool(self._worker_count)
        self._lane = threading.local()
        self._numbers = itertools.count()
        self._threads = ThreadPoolExecutor(cores, thread_name_prefix="bbzip-lane", initializer=self._number_lane)

    def _number_lane(self) -> None:
        self._lane.here = next(self._numbers) == 0 and not self._workers_only

    def submit(self, job: Job) -> Future:
        return self._threads.submit(self._run, job)

    def _run(self, job: Job):
        if self._lane.here:
            return job.function(self._model, *job.args)
        for attempt in range(WORKER_RETRIES + 1):
            pool = self._workers  # the pool this try runs on: another lane may replace it meanwhile
            try:
                return self._in_worker(pool, job)
            except BrokenProcessPool:  # a worker died (killed, out of memory): its jobs again, on fresh workers
                if attempt == WORKER_RETRIES:
                    raise WorkerLost(f"a worker process ended abruptly {WORKER_RETRIES + 1} times running the same "
                                     "job (killed, or out of memory?)") from None
                # (the pool that broke, not whatever this Lanes holds now: that may be the fresh
                # pool another lane made, which must not be let go in its turn)
                self._workers = _fresh_pool(pool, self._worker_count)

    def _in_worker(self, pool: ProcessPoolExecutor, job: Job):
        result = pool.submit(_in_worker, self._key, None, job.function, *job.args).result()
        if isinstance(result, _NeedsModel):  # a worker that has not had this model yet
            result = pool.submit(_in_worker, self._key, self._model, job.function, *job.args).result()
        return result

    def __enter__(self) -> "Lanes":
        return self

    def __exit__(self, *exc) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)


def start_workers(cores: int) -> None:
    """Start the worker processes of `cores` lanes now, ahead of their first jobs: a worker
    takes a good part of a second to start (a fresh interpreter importing numpy and bbzip),
    which the work before (reading the inputs, an archive's table) then hides."""
    if cores > 1 and not _elsewhere:
        pool = _pool(cores - 1)
        try:
            for _ in range(cores - 1):
                pool.submit(_ready)
        except BrokenProcessPool:  # (a worker of an earlier call died: its pool goes)
            _fresh_pool(pool, cores - 1)


# A job whose worker died is run again on fresh workers this many times (jobs are pure
# functions of their arguments, so running one again gives the same result), as Dask retries a
# lost worker's job; then WorkerLost.
WORKER_RETRIES = 2


class WorkerLost(RuntimeError):
    """Worker processes kept dying on a job."""


_pools: dict = {}  # workers -> the pool; kept for every later call (reading, the fallback, coding, the check)
_pools_lock = threading.Lock()
_keys: dict = {}  # id of a model -> (its key, the model: held, so that the id is not another's while it is kept)
_serials = itertools.count()


def _pool(workers: int) -> ProcessPoolExecutor:
    with _pools_lock:
        if workers not in _pools:
            for old in _pools.values():
                old.shutdown()
            _pools.clear()
            context = multiprocessing.get_context("spawn")
            _pools[workers] = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker)
        return _pools[workers]


def _fresh_pool(broken: ProcessPoolExecutor, workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` in place of one a dead worker broke: it is let go once, by whichever
    lane finds it first, and every lane then takes the one pool _pool makes (a lane that looked
    while another was between letting go and making found none)."""
    with _pools_lock:
        if _pools.get(workers) is broken:
            del _pools[workers]
            broken.shutdown(wait=False, cancel_futures=True)
    return _pool(workers)


def _model_key(model) -> int | None:
    """A number naming `model` to the workers (None: the jobs need none). The latest few are
    kept with their models; a model named again after its entry went gets a new number."""
    if model is None:
        return None
    if id(model) not in _keys:
        while len(_keys) >= _KEPT_KEYS:
            del _keys[next(iter(_keys))]
        _keys[id(model)] = (next(_serials), model)
    return _keys[id(model)][0]


_KEPT_KEYS = 4


class _NeedsModel:
    """A worker's answer to a job whose model it has not been given: send it with the job."""


_worker_models: dict = {}  # in a worker: the model it was last given, by key


def _start_worker() -> None:
    """A worker process: one core (BLAS too). numpy is imported first: a limit reaches only the
    BLAS libraries already loaded, and nothing here has loaded numpy's yet (a worker that
    reads files has no model to bring it)."""
    import numpy  # noqa: F401

    threads.set_budget(1)
    threadpool_limits(limits=1)
    malloc.usual_thresholds()


def _ready() -> None:
    """start_workers' job: nothing, once the worker runs."""


def _in_worker(key, model, function, *args):
    if key is not None and key not in _worker_models:
        if model is None:
            return _NeedsModel()
        _worker_models.clear()  # (one model at a time: a compress codes with one)
        _worker_models[key] = model
    return function(_worker_models.get(key), *args)
