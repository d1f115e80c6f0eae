"""An entry's image stack handed out in order, a run of images at a time, as it is decoded.

A large array is never held whole on the way out of an archive: its model images come block by
block from the model stream as pixels (the model maps its symbols back), and its classic
fallback images are decoded one by one at their places between them (cli/coding.py says where
each is). What is held is one block's images, whatever the size of the array.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

from . import classic
from .table import FALLBACK_CODES

_CODECS = {code: codec for codec, code in FALLBACK_CODES.items()}


class ImageFeed:
    """The images (N, H, W) uint8 of one entry: `take(n)` yields the next n of them, in runs of
    consecutive images; `finish` checks that every one was handed out and that the classic
    images match their crc32. A damaged source raises ValueError, or BBZipError from the model
    stream (both name the entry's damage; the caller reports it)."""

    def __init__(self, model_runs: Iterator[np.ndarray], image_shape: tuple[int, int],
                 classic_images: list[tuple[int, str, object]] = (), classic_crc32: int | None = None,
                 read_blob=bytes):
        """model_runs: the entry's model images in order, in runs, as pixels;
        classic_images: (position in the stack, fallback code, blob), by position, each blob
        read by `read_blob` when its image is decoded (one classic image is held at a time)."""
        self._model_runs, self._shape = model_runs, image_shape
        self._read_blob = read_blob
        self._run = np.zeros((0, *image_shape), dtype=np.uint8)  # what is left of the current model run
        self._classic, self._next_classic = list(classic_images), 0
        self._crc32, self._expected_crc32 = 0, classic_crc32
        self.position = 0

    def take(self, count: int) -> Iterator[np.ndarray]:
        end = self.position + count
        while self.position < end:
            if self._classic_at(self.position):
                yield self._classic_image()[None]
                continue
            limit = end - self.position
            if self._next_classic < len(self._classic):
                limit = min(limit, self._classic[self._next_classic][0] - self.position)
            run = self._model_images(limit)
            self.position += len(run)
            yield run

    def whole(self, count: int) -> np.ndarray:
        """The next `count` images as one array (a single image, or a Fortran-order array)."""
        stack = np.empty((count, *self._shape), dtype=np.uint8)
        filled = 0
        for run in self.take(count):
            stack[filled : filled + len(run)] = run
            filled += len(run)
        return stack

    def finish(self) -> None:
        if len(self._run) or next(self._model_runs, None) is not None or self._next_classic != len(self._classic):
            raise ValueError("the archive holds more images for this entry than it restores")
        if self._expected_crc32 is not None and self._crc32 != self._expected_crc32:
            raise ValueError("classic images do not match their checksum")

    def _classic_at(self, position: int) -> bool:
        return self._next_classic < len(self._classic) and self._classic[self._next_classic][0] == position

    def _classic_image(self) -> np.ndarray:
        _, code, blob = self._classic[self._next_classic]
        height, width = self._shape[:2]
        mode = "RGB" if len(self._shape) == 3 else "L"
        image = np.asarray(classic.decode(self._read_blob(blob), _CODECS[code], mode, width, height), dtype=np.uint8)
        self._crc32 = zlib.crc32(np.ascontiguousarray(image), self._crc32)
        self._next_classic += 1
        self.position += 1
        return image

    def _model_images(self, limit: int) -> np.ndarray:
        """Up to `limit` (at least one) model images from the current run."""
        while not len(self._run):
            run = next(self._model_runs, None)
            if run is None:
                raise ValueError("the archive holds fewer images for this entry than it restores")
            self._run = run.reshape(-1, *self._shape)
        images, self._run = self._run[:limit], self._run[limit:]
        return images
