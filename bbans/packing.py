"""Byte-level helpers for Message.to_bytes / from_bytes.

Heads are packed so that a wide head does not cost two words per lane. Every lane h lies in
[2^32, 2^64); write hi = h >> 32 (>= 1) with its leading one bit implicit:

    5 bits: bit_length(hi) - 1, for every lane first, then per lane the low
    bit_length(hi) - 1 bits of hi followed by the 32 bits of h's low word.

That costs log2(h) + about 5 bits per lane instead of 64.
"""
from __future__ import annotations

import numpy as np

from .errors import CorruptStream

_MAX_VARINT_BYTES = 10


def write_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_uvarint(view, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(view):
            raise CorruptStream("stream ends inside a length field")
        byte = view[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise CorruptStream("length field too long")


def _bit_length(values: np.ndarray) -> np.ndarray:
    """bit_length of positive uint64 values below 2^32, exactly (no float log)."""
    length = np.zeros(values.shape, dtype=np.int64)
    v = values.copy()
    for shift in (16, 8, 4, 2, 1):
        big = v >= np.uint64(1 << shift)
        length += big * shift
        v = np.where(big, v >> np.uint64(shift), v)
    return length + (v > 0)


def _bits_msb_first(values: np.ndarray, width: int) -> np.ndarray:
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    return ((values[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)


def pack_heads(heads: np.ndarray) -> bytes:
    heads = heads.astype(np.uint64)
    hi = heads >> np.uint64(32)
    lengths = _bit_length(hi)  # 1..32
    header = _bits_msb_first((lengths - 1).astype(np.uint64), 5).ravel()
    body_bits = _bits_msb_first(heads, 64)
    # Keep the last (lengths - 1 + 32) bits of each 64-bit row: drop the leading zeros and one.
    keep = np.arange(64)[None, :] >= (64 - (lengths - 1 + 32))[:, None]
    bits = np.concatenate([header, body_bits[keep]])
    return np.packbits(bits).tobytes()


def unpack_heads(view, pos: int, n_lanes: int) -> tuple[np.ndarray, int]:
    header_bits = 5 * n_lanes
    header_bytes = (header_bits + 7) // 8
    if len(view) - pos < header_bytes:
        raise CorruptStream("stream ends inside the head")
    available = np.unpackbits(np.frombuffer(view[pos:], dtype=np.uint8))
    weights = 1 << np.arange(4, -1, -1)
    lengths = (available[:header_bits].reshape(n_lanes, 5) * weights).sum(axis=1) + 1
    widths = lengths - 1 + 32
    total_bits = header_bits + int(widths.sum())
    total_bytes = (total_bits + 7) // 8
    if len(available) < total_bits:
        raise CorruptStream("stream ends inside the head")
    if total_bits % 8 and available[total_bits : total_bytes * 8].any():
        raise CorruptStream("nonzero padding after the head")
    # Rebuild each lane: implicit leading one, then its width bits.
    heads = np.zeros(n_lanes, dtype=np.uint64)
    offsets = header_bits + np.concatenate([[0], np.cumsum(widths)[:-1]])
    max_width = int(widths.max()) if n_lanes else 0
    for k in range(max_width):
        active = widths > k
        bit = available[offsets[active] + k].astype(np.uint64)
        heads[active] = (heads[active] << np.uint64(1)) | bit
    heads |= np.uint64(1) << (widths.astype(np.uint64))
    return heads, pos + total_bytes
