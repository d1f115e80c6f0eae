"""The model stream in blocks: independent bits-back messages, coded on every core.

A stream of N images is cut into blocks of `block_images` (the last one shorter). Each block is
its own message (stream.encode: its own initial bits and ramp), so blocks can be coded in any
order, in parallel worker processes, and a damaged block loses only its own images. The cut
depends only on N and `block_images`, never on the number of workers, so the bytes are the same
for any -T. Blocks are jobs for models.scheduler: each core takes the next block when it is
free, and results are handed on in order, never more than a few blocks ahead, so what is held
is a few blocks' images and messages, whatever the number of images.
"""
from __future__ import annotations

import hashlib
import itertools

import numpy as np

from bbzip.bbans import BBANSError

from . import stream
from .coding_settings import CodingSettings
from .scheduler import Job, run_in_order
from .tile_intervals import TileIntervals

MAX_BLOCK_IMAGES = 1 << 20  # the default depends on what the model codes (models/pixels.py)


def block_bounds(n_images: int, block_images: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + block_images, n_images)) for lo in range(0, n_images, block_images)]


def encode_blocks(model, block_symbols, settings: CodingSettings, cores: int, on_images=None, squares: bool = True,
                  check: bool = False):
    """block_symbols: an iterable of each block's (symbols (n, pixels) uint8, extents (n, 2) or
    None, known intervals or their parts (StackedImages.intervals) or None: models/stream.py),
    taken as cores come free; yields one message per block, in order. `squares`: stream.encode's.
    With `check`, each block is decoded where it was coded, as decompress will decode it, and
    must give back its images (stream.encode_checked; else CorruptStream); each message then
    comes with its sha256 (message, digest), which decode_blocks' `checked` takes."""
    jobs = (Job(_encode_one, (symbols, settings, extents, known, squares, check), len(symbols))
            for symbols, extents, known in block_symbols)
    return run_in_order(model, jobs, cores, on_images)


def decode_blocks(model, streams, counts: list[int], settings: CodingSettings, cores: int, on_images=None,
                  extents=None, squares: bool = True, expected=None, known=None, checked=None):
    """streams: an iterable of the blocks' messages (read a wave at a time); extents: each
    block's, or None. Yields each block's symbols (n, pixels) uint8, or the reason it could not
    be decoded (a damaged block does not stop the others). `squares`: as the blocks were coded.
    `expected`: an iterable of the symbols each block should hold (stream.decode's), or None;
    `known`, with it: an iterable of each block's intervals or None (stream.decode's);
    `checked`, with it: an iterable of the sha256 of each block's message as encode_blocks
    checked it, or None: a message with that digest is the one that decoded to its symbols
    where it was coded, and gives them without being decoded again."""
    extents = extents if extents is not None else [None] * len(counts)
    expected = expected if expected is not None else itertools.repeat(None)
    known = known if known is not None else itertools.repeat(None)
    checked = checked if checked is not None else itertools.repeat(None)

    def job(data, count, part, symbols, intervals, digest):
        if digest is not None and symbols is not None and len(symbols) == count and hashlib.sha256(data).digest() == digest:
            return Job(_already_checked, (symbols,), count, here=True)  # (not sent to a worker to come back)
        return Job(_decode_one, (data, count, settings, part, squares, symbols, intervals), count)

    return run_in_order(model, itertools.starmap(job, zip(streams, counts, extents, expected, known, checked)),
                        cores, on_images)


def joined(known: TileIntervals | list[TileIntervals] | None) -> TileIntervals | None:
    """A block's known intervals as one (StackedImages.intervals gives them in parts)."""
    return TileIntervals.joined(known) if isinstance(known, list) else known


def _encode_one(model, symbols, settings, extents, known, squares, check=False, on_batch=None):
    if not check:
        return stream.encode(model, symbols, settings, extents, joined(known), on_batch, squares)
    message = stream.encode_checked(model, symbols, settings, extents, joined(known), on_batch, squares)
    return message, hashlib.sha256(message).digest()


class StackedImages:
    """Several image stacks (n_i, H, W[, C]) read as one (N, H, W[, C]) without joining them: a slice
    gives a copy of only the images in its range (a block's or a chunk's). A stack may carry the
    intervals of its images (`known`: models/tile_intervals.py, cli/sources.py: WithIntervals)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, stacks, counts: np.ndarray | None = None):
        """stacks: arrays, or anything that gives arrays for slices (cli/sources.py). With
        `counts` (their lengths), a sequence of stacks none of which is empty, each taken from it
        (`stacks[i]`) only where a slice needs its images, so the sequence may make them as asked
        for (compress's entries, cli/entry_log.py)."""
        if counts is None:
            stacks = [s for s in stacks if len(s)]
            counts = [len(s) for s in stacks]
        self.stacks = stacks
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.shape = (len(self), *(stacks[0].shape[1:] if len(stacks) else (0, 0)))

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, span: slice) -> np.ndarray:
        lo, hi, step = span.indices(len(self))
        if step != 1:
            raise ValueError("StackedImages takes plain slices")
        parts = [stack[first:end] for stack, first, end in self._pieces(lo, hi)]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else self.stacks[0][:0]

    def intervals(self, lo: int, hi: int) -> list[TileIntervals] | None:
        """The intervals of images lo..hi where every stack they come from carries them, else
        None: in parts, one a stack, which the block's job joins (`joined`) where it runs. At 8
        bytes a value they are most of what a block's job carries, and the join is a copy: done
        by the worker, not by the process that hands out the jobs and writes the archive."""
        known = [(getattr(stack, "known", None), first, end) for stack, first, end in self._pieces(lo, hi)]
        if not known or any(intervals is None for intervals, _, _ in known):
            return None
        return [intervals.tiles(first, end) for intervals, first, end in known]

    def _pieces(self, lo: int, hi: int):
        """(stack, first, end) of each stack that images lo..hi lie in, with their range in it."""
        number = int(np.searchsorted(self.starts, lo, side="right")) - 1
        while lo < hi:
            start, end = int(self.starts[number]), min(hi, int(self.starts[number + 1]))
            yield self.stacks[number], lo - start, end - start
            lo, number = end, number + 1


def _already_checked(model, symbols, on_batch=None):
    """The symbols of a block whose message is the one checked where it was coded."""
    if on_batch:
        on_batch(len(symbols))
    return np.asarray(symbols, dtype=np.uint8).reshape(len(symbols), -1)


def _decode_one(model, data, count, settings, extents, squares, expected, known, on_batch=None):
    try:
        return stream.decode(model, data, count, settings, extents, on_batch, squares, expected, joined(known))
    except BBANSError as error:
        return str(error)
