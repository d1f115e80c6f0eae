"""The model stream in blocks: independent bits-back messages, coded on every core.

A stream of N images is cut into blocks of `block_images` (the last one shorter). Each block is
its own message (stream.encode: its own initial bits and ramp), so blocks can be coded in any
order, in parallel worker processes, and a damaged block loses only its own images. The cut
depends only on N and `block_images`, never on the number of workers, so the bytes are the same
for any -T. Each core takes the next block when it is free, and results are handed on in order,
never more than a few blocks ahead (`iter_jobs`): what is held is a few blocks' images and
messages, whatever the number of images.

With N cores, this process and N - 1 worker processes code one block at a time each (workers
are spawned, which is safe wherever bbzip runs whatever the parent has imported; each gets the
frozen model once and one core, models.threads). A single block, or one core, is coded in this
process with every thread it was given.
"""
from __future__ import annotations

import itertools
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from bbzip.bbans import BBANSError

from . import stream, threads
from .coding_settings import CodingSettings

MAX_BLOCK_IMAGES = 1 << 20  # the default depends on the model (coder_choice.BLOCK_IMAGES)


def block_bounds(n_images: int, block_images: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + block_images, n_images)) for lo in range(0, n_images, block_images)]


def encode_blocks(model, block_symbols, settings: CodingSettings, cores: int, on_images=None):
    """block_symbols: an iterable of each block's symbols (n, pixels) uint8, taken a wave at a
    time; yields one message per block, in order."""
    return iter_jobs(model, stream.encode, ((symbols, settings) for symbols in block_symbols), cores, on_images)


def decode_blocks(model, streams, counts: list[int], settings: CodingSettings, cores: int, on_images=None):
    """streams: an iterable of the blocks' messages (read a wave at a time). Yields each block's
    symbols (n, pixels) uint8, or the reason it could not be decoded (a damaged block does not
    stop the others)."""
    return iter_jobs(model, _decode_one, ((data, count, settings) for data, count in zip(streams, counts)), cores, on_images)


def iter_jobs(model, function, jobs, cores: int, on_images=None, window: int | None = None):
    """function(model, *job) for each job of an iterable, yielded in order, on `cores` cores
    (this process and spawned workers holding the model); `function` must be importable by
    name, and its first job argument an array of images or its second a count of them (for
    `on_images`).

    Every core takes the next job as soon as it is free (no core waits for a slow one), but no
    job is taken more than `window` jobs (default: two per core) ahead of the result to be
    yielded next: what is held is a few jobs and results, whatever the number of jobs.
    """
    pending = iter(jobs)
    first = list(itertools.islice(pending, 2))
    if cores <= 1 or len(first) < 2:  # one core, or one job: here, with every thread given (-T 1: BLAS too)
        with threads.limited(cores), threadpool_limits(limits=cores):
            for job in itertools.chain(first, pending):
                yield function(model, *job, on_images)
        return
    window = window or 2 * cores
    pending, results, failures = itertools.chain(first, pending), {}, []
    state = {"taken": 0, "given": 0, "exhausted": False, "stop": False}
    ready = threading.Condition()
    pool = _pool(model, cores - 1)

    def lane(local: bool) -> None:
        while True:
            with ready:
                while not state["stop"] and state["taken"] - state["given"] >= window:
                    ready.wait()
                if state["stop"] or state["exhausted"]:
                    return
                try:
                    job = next(pending)
                except StopIteration:
                    state["exhausted"] = True
                    ready.notify_all()
                    return
                except BaseException as error:
                    failures.append(error)
                    state["stop"] = True
                    ready.notify_all()
                    return
                index = state["taken"]
                state["taken"] += 1
            try:
                result = function(model, *job) if local else pool.submit(_in_worker, function, *job).result()
            except BaseException as error:  # a failed job: no lane starts another
                with ready:
                    failures.append(error)
                    state["stop"] = True
                    ready.notify_all()
                return
            with ready:
                results[index] = result
                if on_images:
                    on_images(_count(job))
                ready.notify_all()

    with threads.limited(1), threadpool_limits(limits=1):
        lanes = [threading.Thread(target=lane, args=(number == 0,), daemon=True) for number in range(cores)]
        for thread in lanes:
            thread.start()
        try:
            while True:
                with ready:
                    while not failures and state["given"] not in results and \
                            not (state["exhausted"] and state["given"] == state["taken"]):
                        if not any(thread.is_alive() for thread in lanes):
                            raise RuntimeError("every coding lane stopped before the last job")  # a bug, not a hang
                        ready.wait(0.5)
                    if failures:
                        raise failures[0]
                    if state["given"] not in results:
                        return  # every job done and handed on
                    result = results.pop(state["given"])
                    state["given"] += 1
                    ready.notify_all()
                yield result
        finally:  # done, failed, or the consumer stopped early (Ctrl-C, SIGTERM): no lane takes another job
            with ready:
                state["stop"] = True
                ready.notify_all()
            for thread in lanes:
                thread.join()


class StackedImages:
    """Several image stacks (n_i, H, W) read as one (N, H, W) without joining them: a slice
    gives a copy of only the images in its range (a block's or a chunk's)."""

    dtype, ndim = np.dtype(np.uint8), 3

    def __init__(self, stacks: list):
        """stacks: arrays, or anything that gives arrays for slices (cli/sources.py)."""
        self.stacks = [s for s in stacks if len(s)]
        self.starts = np.cumsum([0] + [len(s) for s in self.stacks])
        self.shape = (len(self), *(self.stacks[0].shape[1:] if self.stacks else (0, 0)))

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, span: slice) -> np.ndarray:
        lo, hi, step = span.indices(len(self))
        if step != 1:
            raise ValueError("StackedImages takes plain slices")
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        parts = []
        while lo < hi:
            start = int(self.starts[first])
            end = min(hi, start + len(self.stacks[first]))
            parts.append(self.stacks[first][lo - start : end - start])
            lo, first = end, first + 1
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else self.stacks[0][:0]


def _decode_one(model, data, count, settings, on_batch=None):
    try:
        return stream.decode(model, data, count, settings, on_batch)
    except BBANSError as error:
        return str(error)


def _count(job) -> int:
    return len(job[0]) if isinstance(job[0], np.ndarray) else job[1]


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


def _in_worker(function, *job):
    return function(_worker_model, *job)
