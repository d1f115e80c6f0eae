"""Strings in sorted order, however many: a run at a time sorted in memory, the runs past the
first written to a temporary file and merged back, so that a folder of a million files is
listed in sorted order holding a run's names, not a million."""
from __future__ import annotations

import heapq
import itertools
import os
import tempfile
from typing import Iterable, Iterator

RUN = 1 << 16  # strings sorted in memory at a time
READ = 1 << 14  # bytes read back at a time from each run
_END = b"\0"  # after each string: file names never hold a NUL


def sorted_strings(strings: Iterable[str], run: int | None = None) -> Iterator[str]:
    """`strings` (without NUL characters) in sorted order, holding at most `run` (RUN) of them
    and a read buffer for every `run` more."""
    strings, run = iter(strings), run or RUN
    first = sorted(itertools.islice(strings, run))
    if len(first) < run:
        yield from first
        return
    with tempfile.TemporaryFile() as spill:
        spans, batch = [], first
        del first
        while batch:
            start = spill.tell()
            spill.write(_END.join(text.encode("utf-8", "surrogateescape") for text in batch) + _END)
            spans.append((start, spill.tell()))
            del batch  # (before the next run is taken: one run held, not two)
            batch = sorted(itertools.islice(strings, run))
        spill.flush()
        yield from heapq.merge(*(_read_run(spill.fileno(), start, end) for start, end in spans))


def _read_run(fd: int, start: int, end: int) -> Iterator[str]:
    """The strings written between `start` and `end`, read back a buffer at a time."""
    left = b""
    while start < end:
        chunk = os.pread(fd, min(READ, end - start), start)
        if not chunk:
            raise OSError(f"a temporary file ended early at byte {start}")
        start += len(chunk)
        *whole, left = (left + chunk).split(_END)
        for raw in whole:
            yield raw.decode("utf-8", "surrogateescape")
