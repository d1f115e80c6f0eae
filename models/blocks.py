"""The model stream in blocks: independent bits-back messages, coded on every core.

A stream of N images is cut into blocks of `block_images` (the last one shorter). Each block is
its own message (stream.encode: its own initial bits and ramp), so blocks can be coded in any
order, in parallel worker processes, and a damaged block loses only its own images. The cut
depends only on N and `block_images`, never on the number of workers, so the bytes are the same
for any -T. Blocks are coded in waves of one per core and handed on in order as each wave ends
(`iter_jobs`), so what is held is one wave's images and messages, whatever the number of images.

With N cores, this process and N - 1 worker processes code one block at a time each (workers
are spawned, which is safe wherever bbzip runs whatever the parent has imported; each gets the
frozen model once and one core, models.threads). A single block, or one core, is coded in this
process with every thread it was given.
"""
from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from bbans import BBANSError

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


def iter_jobs(model, function, jobs, cores: int, on_images=None, wave_jobs: int | None = None):
    """function(model, *job) for each job of an iterable, in order: in waves of `wave_jobs`
    (default: one per core) run by run_jobs, each wave's results handed on before the next
    wave's jobs are taken."""
    wave, size = [], wave_jobs or cores
    for job in jobs:
        wave.append(job)
        if len(wave) == size:
            yield from run_jobs(model, function, wave, cores, on_images)
            wave = []
    if wave:
        yield from run_jobs(model, function, wave, cores, on_images)


class StackedImages:
    """Several image stacks (n_i, H, W) read as one (N, H, W) without joining them: a slice
    gives a copy of only the images in its range (a block's or a chunk's)."""

    def __init__(self, stacks: list[np.ndarray]):
        self.stacks = [s for s in stacks if len(s)]
        self.starts = np.cumsum([0] + [len(s) for s in self.stacks])

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


def run_jobs(model, function, jobs: list, cores: int, on_images):
    """[function(model, *job) for job in jobs] on `cores` cores (this process and spawned
    workers holding the model); `function` must be importable by name, and its first job
    argument an array of images or its second a count of them (for `on_images`)."""
    if min(cores, len(jobs)) <= 1:
        with threads.limited(cores), threadpool_limits(limits=cores):  # -T 1 means one core, BLAS too
            return [function(model, *job, on_images) for job in jobs]
    # This process codes blocks too, beside cores - 1 workers: one process fewer to start and
    # to send the model to. Every lane takes the next block when it is free, so a slow block
    # does not hold the others up; results are kept in block order.
    results, pending, lock, stop = [None] * len(jobs), list(range(len(jobs)))[::-1], threading.Lock(), threading.Event()
    workers = min(cores, len(jobs)) - 1
    pool = _pool(model, workers)

    def lane(local: bool) -> None:
        while not stop.is_set():
            with lock:
                if not pending:
                    return
                index = pending.pop()
            if local:
                results[index] = function(model, *jobs[index])
            else:
                results[index] = pool.submit(_in_worker, function, *jobs[index]).result()
            if on_images:
                with lock:
                    on_images(_count(jobs[index]))

    with threads.limited(1), threadpool_limits(limits=1):
        with ThreadPoolExecutor(workers + 1) as lanes:
            done = [lanes.submit(lane, number == 0) for number in range(workers + 1)]
            try:
                for future in done:
                    future.result()
            except BaseException:  # Ctrl-C, SIGTERM or a failed block: no lane starts another block
                stop.set()
                raise
    return results


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
