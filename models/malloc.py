"""glibc's malloc thresholds where bbzip's loops need them, whatever the environment set.

MALLOC_TRIM_THRESHOLD_ in the environment (Dask's nanny starts its workers with it, and a
process that started a local Dask cluster hands it on to every process it starts after) also
fixes glibc's mmap threshold at 128 KiB: every array above it is mapped and unmapped again, and
the coder's loops, which make many such temporaries a step, run far slower (README, *On a Dask
cluster*). Where the variable is set, `usual_thresholds` puts both thresholds where glibc's own
dynamic ones end up; elsewhere (not set, or no glibc) it does nothing.
"""
from __future__ import annotations

import ctypes
import functools
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


@functools.cache
def usual_thresholds() -> None:
    """Once a process: see the module's docstring."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):
        pass
