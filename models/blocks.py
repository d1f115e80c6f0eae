"""The model stream in blocks: independent bits-back messages, coded on every core.

A stream of N images is cut into blocks of `block_images` (the last one shorter). Each block is
its own message (stream.encode: its own initial bits and ramp), so blocks can be coded in any
order, in parallel worker processes, decoded one at a time (bounded memory), and a damaged block
loses only its own images. The cut depends only on N and `block_images`, never on the number of
workers, so the bytes are the same for any -T.

Workers are separate processes (spawned: safe wherever bbzip runs, whatever the parent has
imported), each given the frozen model once and one core (models.threads); a single block, or
one worker, is coded in this process with every thread it was given.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from bbans import BBANSError

from . import stream, threads
from .coding_settings import CodingSettings

BLOCK_IMAGES = 4096  # default: about 0.2% of a block's bytes go to its initial bits and ramp
MAX_BLOCK_IMAGES = 1 << 20


def block_bounds(n_images: int, block_images: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + block_images, n_images)) for lo in range(0, n_images, block_images)]


def encode_blocks(model, symbols: np.ndarray, settings: CodingSettings, block_images: int, cores: int,
                  on_images=None) -> list[bytes]:
    """symbols: (N, pixels) uint8; one message per block, in order."""
    jobs = [(symbols[lo:hi], settings) for lo, hi in block_bounds(len(symbols), block_images)]
    return _run(model, _encode_one, jobs, cores, on_images)


def decode_blocks(model, streams: list[bytes], counts: list[int], settings: CodingSettings, cores: int,
                  on_images=None) -> list[np.ndarray | str]:
    """Each block's symbols (n, pixels) uint8, or the reason it could not be decoded (a
    damaged block does not stop the others)."""
    jobs = [(data, count, settings) for data, count in zip(streams, counts)]
    return _run(model, _decode_one, jobs, cores, on_images)


def _encode_one(model, symbols, settings, on_batch=None) -> bytes:
    return stream.encode(model, symbols, settings, on_batch)


def _decode_one(model, data, count, settings, on_batch=None):
    try:
        return stream.decode(model, data, count, settings, on_batch)
    except BBANSError as error:
        return str(error)


def _count(job) -> int:
    return len(job[0]) if isinstance(job[0], np.ndarray) else job[1]


def _run(model, function, jobs: list, cores: int, on_images):
    workers = max(1, min(cores, len(jobs)))
    if workers == 1:
        with threads.limited(cores):
            return [function(model, *job, on_images) for job in jobs]
    results = [None] * len(jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(model,)) as pool:
        futures = {pool.submit(_in_worker, function, *job): index for index, job in enumerate(jobs)}
        for future in as_completed(futures):
            index = futures[future]
            results[index] = future.result()
            if on_images:
                on_images(_count(jobs[index]))
    return results


_worker_model = None


def _start_worker(model) -> None:
    """A worker process: the model, and one core (BLAS too)."""
    global _worker_model
    from threadpoolctl import threadpool_limits

    _worker_model = model
    threads.set_budget(1)
    threadpool_limits(limits=1)


def _in_worker(function, *job):
    return function(_worker_model, *job)
