"""How many cores this process may use for one model's work (K-step inference threads).

The default is every core the process may run on. When blocks are coded in several worker
processes (models.blocks), each worker is given one, so that N workers use N cores, not N^2.
The number of threads never changes what is computed, only how fast.
"""
from __future__ import annotations

import contextlib
import os


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


_budget = available_cores()


def budget() -> int:
    """Threads one model computation may use here."""
    return _budget


def set_budget(threads: int) -> None:
    global _budget
    _budget = max(1, int(threads))


@contextlib.contextmanager
def limited(threads: int):
    """Use at most `threads` threads inside the block."""
    global _budget
    before, _budget = _budget, max(1, min(int(threads), available_cores()))
    try:
        yield
    finally:
        _budget = before
