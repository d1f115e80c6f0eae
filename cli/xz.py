"""Bytes kept as they are (stored files, .npz members that are not image stacks), xz-compressed."""
from __future__ import annotations

import lzma

XZ_DICTIONARY = 64 << 20  # preset 9's
XZ_MEMORY_LIMIT = 96 << 20  # the decoder's own memory: preset 9's 64 MiB dictionary, and no more


def xz(raw: bytes) -> bytes:
    """xz at preset 9 with a dictionary no larger than the bytes need (at least 64 KiB, at
    most preset 9's 64 MiB): the same compressed data (only the block header's
    dictionary size and its crc differ), but neither the encoder nor the decoder sets up preset
    9's whole dictionary for a small file (compressing 1 MiB: 30 instead of 90 MB of memory;
    130 KB of text 8x faster)."""
    dictionary = 1 << 16
    while dictionary < len(raw) and dictionary < XZ_DICTIONARY:
        dictionary <<= 1
    return lzma.compress(raw, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": dictionary}])


def unxz(blob: bytes, size: int) -> bytes:
    """xz-decompress at most the size the header declares (a bomb stops there), with a decoder
    that may not take more memory than bbzip's own archives need."""
    data, complete, trailing = _inflate(blob, size + 1)
    if len(data) != size or not complete:
        raise ValueError("stored bytes do not have the declared size")
    if trailing:  # bbzip writes one xz stream a blob: anything after it is damage
        raise ValueError("bytes after the stored xz stream")
    return data


def _inflate(blob: bytes, max_length: int) -> tuple[bytes, bool, bool]:
    """(data, whether the stream ended, whether bytes follow its end)."""
    # On its own so that the decoder (and its dictionary) is freed before any error is raised,
    # not kept alive by the traceback.
    inflater = lzma.LZMADecompressor(memlimit=XZ_MEMORY_LIMIT)
    data = inflater.decompress(blob, max_length=max_length)
    return data, inflater.eof, bool(inflater.unused_data)
