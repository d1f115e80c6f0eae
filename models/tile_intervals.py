"""The intervals a tiled model without a latent codes tiles by, computed once and used twice.

Such a model codes each value of a tile by its interval (start, freq) under the model, and the
intervals depend on the tile's pixels alone (models/frozen_tiled_ar.py: `intervals`). The
classic fallback computes them for its codelength, the encoder pushes them, and compress's
check pops them again from the archive's bytes: each value must be where its interval says, and
each block's message must come back to its initial state (models/stream.py). The check then
runs the decoder's network on a share of its steps only (models/frozen_tiled_ar.py:
RECOMPUTED_STEPS): what it does not redo on the others is the encoder's network over the same
pixels, whose integers are the decoder's whatever the batch (DESIGN: the exactness contract).

What it must not take on trust is that the intervals it is handed belong to the tiles it checks:
they travel from the fallback through entries, images taken out for classic codecs and blocks.
Each tile's intervals carry a digest of what they were computed from (its symbols, its extent
and the precision), and the check compares it with the digest of the tile it expects.
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np


class TileIntervals(NamedTuple):
    """start, freq: uint32 (tiles, pixels, channels); digests: (tiles,) uint64 (tile_digests)
    of what they were computed from, or None where they were cut from other tiles' (a block
    coded as squares, models/frozen_tiled_ar.py: TileSquare), which a check cannot use."""

    start: np.ndarray
    freq: np.ndarray
    digests: np.ndarray | None

    def tiles(self, lo: int, hi: int) -> "TileIntervals":
        return TileIntervals(self.start[lo:hi], self.freq[lo:hi], None if self.digests is None else self.digests[lo:hi])

    def kept(self, keep: np.ndarray) -> "TileIntervals":
        """Those of the tiles where `keep` (bool, one per tile) is set."""
        return TileIntervals(self.start[keep], self.freq[keep], None if self.digests is None else self.digests[keep])

    @property
    def nbytes(self) -> int:
        return self.start.nbytes + self.freq.nbytes + (0 if self.digests is None else self.digests.nbytes)

    @staticmethod
    def joined(parts: list["TileIntervals"]) -> "TileIntervals":
        if len(parts) == 1:
            return parts[0]
        digests = None if any(part.digests is None for part in parts) else np.concatenate([part.digests for part in parts])
        return TileIntervals(np.concatenate([part.start for part in parts]), np.concatenate([part.freq for part in parts]),
                             digests)


def tile_digests(symbols: np.ndarray, extents: np.ndarray | None, precision: int) -> np.ndarray:
    """(tiles,) uint64: of each tile's symbols (tiles, values), 0..255, its extent (rows,
    columns inside its image, or none) and the precision of its intervals."""
    tiles = np.ascontiguousarray(symbols.reshape(len(symbols), -1), dtype=np.uint8)
    digests = np.empty(len(tiles), dtype=np.uint64)
    for number, tile in enumerate(tiles):
        digest = hashlib.blake2b(tile, digest_size=8, person=b"bbzip-tile")
        digest.update(np.array([precision, *(extents[number] if extents is not None else (-1, -1))], dtype="<i8"))
        digests[number] = int.from_bytes(digest.digest(), "little")
    return digests
