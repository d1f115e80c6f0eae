"""Bytes kept as they are (stored files, .npz members that are not image stacks), xz-compressed."""
from __future__ import annotations

import functools
import lzma

XZ_DICTIONARY = 64 << 20  # preset 9's
XZ_MEMORY_LIMIT = 96 << 20  # the decoder's own memory: preset 9's 64 MiB dictionary, and no more


def xz(raw: bytes) -> bytes:
    """xz at preset 9 with a dictionary no larger than the bytes need (at least 64 KiB, at
    most preset 9's 64 MiB): the same compressed data (only the block header's
    dictionary size and its crc differ), but neither the encoder nor the decoder sets up preset
    9's whole dictionary for a small file (compressing 1 MiB: 30 instead of 90 MB of memory;
    130 KB of text 8x faster)."""
    return _xz(raw) if raw else _empty_xz()


def _xz(raw: bytes) -> bytes:
    dictionary = 1 << 16
    while dictionary < len(raw) and dictionary < XZ_DICTIONARY:
        dictionary <<= 1
    return lzma.compress(raw, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": dictionary}])


def unxz(blob: bytes, size: int) -> bytes:
    """xz-decompress at most the size the header declares (a bomb stops there), with a decoder
    that may not take more memory than bbzip's own archives need. An empty file's blob, as xz
    writes it here, is known without a decoder (setting one up is most of what a folder of
    many empty files costs to test)."""
    if size == 0 and blob == _empty_xz():
        return b""
    pieces = XzPieces(blob)
    data = pieces.take(size)
    pieces.finish()
    return data


@functools.cache
def _empty_xz() -> bytes:
    return _xz(b"")


class XzPieces:
    """An xz blob decompressed a piece at a time, each of the size asked for: the whole is never
    held (an RGBA stack's alpha planes, taken a run of images at a time), and no more than the
    pieces asked for is inflated. `finish` checks that the stream ends there, with nothing
    after it. Raises ValueError where the blob holds fewer bytes, more, or damaged ones."""

    def __init__(self, blob: bytes):
        self._inflater = lzma.LZMADecompressor(memlimit=XZ_MEMORY_LIMIT)
        self._pending = blob

    def take(self, size: int) -> bytes:
        piece = self._inflate(size)
        while len(piece) < size and not self._inflater.eof and not self._inflater.needs_input:
            piece += self._inflate(size - len(piece))
        if len(piece) != size:
            self._damaged("stored bytes do not have the declared size")
        return piece

    def finish(self) -> None:
        if not self._inflater.eof and (self._inflate(1) or not self._inflater.eof):
            self._damaged("stored bytes do not have the declared size")
        if self._inflater.unused_data:  # bbzip writes one xz stream a blob: anything after it is damage
            self._damaged("bytes after the stored xz stream")

    def _damaged(self, why: str):
        # The decoder (and its dictionary) is freed before the error is raised, not kept alive
        # by the traceback that holds this object.
        self._inflater = self._pending = None
        raise ValueError(why)

    def _inflate(self, max_length: int) -> bytes:
        try:
            data = self._inflater.decompress(self._pending, max_length=max_length)
        except EOFError:  # asked again after the stream's end: it has no more bytes
            return b""
        self._pending = b""
        return data
