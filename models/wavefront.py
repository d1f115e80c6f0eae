"""The order a tiled model decodes a tile's pixels in: a diagonal wavefront.

A pixel's causal window reaches `radius` rows up and `radius` columns either side, so pixel
(i, j) needs (i - 1, j + radius) first. Giving it step j + (radius + 1) i puts every pixel after
all of its window, and the pixels of one step need nothing of each other: they decode side by
side. A T x T tile then takes T + (radius + 1)(T - 1) steps instead of T^2 (253 instead of 4,096
at T = 64, radius 2), and each step's network runs on rows for every pixel of the step in every
tile, which is where numpy is fast.

One step holds at most one pixel per row and its rows are consecutive, at most
ceil(T / (radius + 1)) of them: row i codes on lane `i mod lanes` of its tile, so a tile needs
that many lanes of the rANS head, each coding its rows' pixels one after another.

Images whose size is not a multiple of T leave part of their last tiles outside the image (the
`extent` of a tile: its valid rows and columns). Those pixels are not coded: the decoder fills
each with its left neighbour (outside the image's width) or its upper one (below its height),
which is what models/tiling.py's edge repetition put there, so the window of a pixel on the
image's edge reads what it read when it was encoded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np


class Step(NamedTuple):
    """The pixels of one step across a batch of tiles, in the order the rANS lanes see them
    (the same for encoder and decoder)."""

    tiles: np.ndarray  # of each pixel inside its image
    pixels: np.ndarray  # its flat index in the tile
    lanes: np.ndarray  # the lane it codes on: tile x lanes + row mod lanes
    outside_tiles: np.ndarray  # of each pixel outside its image (not coded)
    outside_pixels: np.ndarray


@dataclass(frozen=True)
class Wavefront:
    tile: int
    radius: int

    @property
    def skew(self) -> int:
        return self.radius + 1

    @property
    def steps(self) -> int:
        return self.tile + self.skew * (self.tile - 1)

    @property
    def lanes(self) -> int:
        """rANS lanes a tile codes on: the most rows one step holds."""
        return math.ceil(self.tile / self.skew)

    @cached_property
    def _padded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pixels, rows, valid), each (steps, lanes): the flat pixels of each step, rows
        ascending, padded to the most a step holds (padding: pixel 0, not valid)."""
        rows, columns = np.divmod(np.arange(self.tile * self.tile), self.tile)
        order = columns + self.skew * rows
        pixels = np.zeros((self.steps, self.lanes), dtype=np.int64)
        valid = np.zeros((self.steps, self.lanes), dtype=bool)
        for number in range(self.steps):
            step_pixels = np.flatnonzero(order == number)
            pixels[number, : len(step_pixels)] = step_pixels
            valid[number, : len(step_pixels)] = True
        return pixels, pixels // self.tile, valid

    def each_step(self, extents: np.ndarray, reverse: bool = False, chunk: int | None = None):
        """step(number, extents) for every step, in order (or the reverse), a chunk of steps
        computed at once: one step's own handful of numpy calls on a few tiles costs as much as
        a decoder's step of a small batch, and a chunk's costs them once. A chunk covers about
        2^16 pixel places of the batch's tiles, so a block of many tiles holds little more."""
        chunk = chunk or max(1, (1 << 16) // (self.lanes * max(1, len(extents))))
        firsts = range(0, self.steps, chunk)
        for first in reversed(firsts) if reverse else firsts:
            steps = self._chunk_steps(first, min(first + chunk, self.steps), extents)
            yield from reversed(steps) if reverse else steps

    def _chunk_steps(self, first: int, end: int, extents: np.ndarray) -> list[Step]:
        pixels, rows, valid = (part[first:end] for part in self._padded)
        # (step, tile, place in the step): np.nonzero runs through it step by step, then tile by
        # tile, then row by row, the coded order of a step's pixels
        within = inside_image(rows.ravel(), (pixels - rows * self.tile).ravel(), extents)
        within = within.reshape(len(extents), *pixels.shape).transpose(1, 0, 2)
        inside = within & valid[:, None, :]
        outside = ~within & valid[:, None, :]
        steps_in, tiles, at = np.nonzero(inside)
        steps_out, outside_tiles, outside_at = np.nonzero(outside)
        step_pixels = pixels[steps_in, at]
        lanes = tiles * self.lanes + rows[steps_in, at] % self.lanes
        outside_pixels = pixels[steps_out, outside_at]
        bounds_in = _bounds(steps_in, end - first)
        bounds_out = _bounds(steps_out, end - first)
        return [Step(tiles[lo:hi], step_pixels[lo:hi], lanes[lo:hi], outside_tiles[out_lo:out_hi], outside_pixels[out_lo:out_hi])
                for (lo, hi), (out_lo, out_hi) in zip(bounds_in, bounds_out)]

    def step(self, step: int, extents: np.ndarray) -> Step:
        """The pixels of `step` in every tile of a batch whose extents (n, 2) (valid rows,
        columns) are given."""
        return self._chunk_steps(step, step + 1, extents)[0]


def _bounds(steps: np.ndarray, count: int) -> list[tuple[int, int]]:
    """(first, end) of each of `count` steps in a sorted array of step numbers (slices, not
    np.split: its Python wrapper costs more than the decoder's work on a step of a few tiles)."""
    ends = np.cumsum(np.bincount(steps, minlength=count)).tolist()
    return list(zip([0] + ends[:-1], ends))


def inside_image(rows: np.ndarray, columns: np.ndarray, extents: np.ndarray) -> np.ndarray:
    """(n, pixels) bool: which of the pixels at (rows, columns) lie inside the images of n tiles
    of these extents."""
    return (rows[None, :] < extents[:, :1]) & (columns[None, :] < extents[:, 1:])


def full_extents(tiles: int, tile: int) -> np.ndarray:
    """Extents of tiles that lie wholly inside their images."""
    return np.full((tiles, 2), tile, dtype=np.int64)
