"""Bytes an archive will hold beside its model stream, kept in a temporary file, not in memory,
from when an input is read until the archive is written: the xz of stored files, JPEG XL
transcodes, classic images. Memory then does not grow with what those add up to."""
from __future__ import annotations

import os

from bbzip.models.files import ByteSource


class Spool:
    """Appends to an open temporary file; each piece comes back as a ByteSource, read when the
    archive is written (by offset: no buffering)."""

    def __init__(self, file):
        self._fd, self._end = file.fileno(), 0

    def add(self, data: bytes) -> ByteSource:
        view, written = memoryview(data), 0
        while written < len(view):
            written += os.pwrite(self._fd, view[written:], self._end + written)
        piece = ByteSource(fd=self._fd, start=self._end, length=len(view))
        self._end += len(view)
        return piece
