"""Bytes an archive will hold beside its model stream, kept in a temporary file, not in memory,
from when an input is read until the archive is written: the xz of stored files, JPEG XL
transcodes, classic images. Memory then does not grow with what those add up to."""
from __future__ import annotations

import os


class Spool:
    """Appends to an open temporary file; each piece is read back by offset (no buffering)."""

    def __init__(self, file):
        self._fd, self._end = file.fileno(), 0

    def add(self, data: bytes) -> "Spooled":
        view, written = memoryview(data), 0
        while written < len(view):
            written += os.pwrite(self._fd, view[written:], self._end + written)
        piece = Spooled(self._fd, self._end, len(view))
        self._end += len(view)
        return piece


class Spooled:
    """One piece of a Spool."""

    __slots__ = ("_fd", "offset", "length")

    def __init__(self, fd: int, offset: int, length: int):
        self._fd, self.offset, self.length = fd, offset, length

    def __len__(self) -> int:
        return self.length

    def read(self) -> bytes:
        data = os.pread(self._fd, self.length, self.offset)
        if len(data) != self.length:  # our own temporary file: only a bug or a vanished disk does this
            raise OSError(f"spooled bytes cut short ({len(data)} of {self.length})")
        return data
