"""What an entry gives back, as sha256 and crc32: compress compares the fingerprint of what it
read with that of what the archive decodes to before it writes the archive."""
from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np

FINGERPRINT_RUN = 4096  # images read at a time to take a fingerprint


class Fingerprint:
    """sha256 and crc32 of what an entry gives back (its pixels with their mode, or its bytes),
    taken piece by piece: no joined copy of a large file's pixels is made to take them."""

    __slots__ = ("_sha256", "crc32")

    def __init__(self, *pieces):
        self._sha256, self.crc32 = hashlib.sha256(), 0
        for piece in pieces:
            self.update(piece)

    def update(self, piece) -> "Fingerprint":
        view = memoryview(np.ascontiguousarray(piece) if isinstance(piece, np.ndarray) else piece).cast("B")
        self._sha256.update(view)
        self.crc32 = zlib.crc32(view, self.crc32)
        return self

    def update_stack(self, stack) -> "Fingerprint":
        """The pixels of a stack read as needed (cli/sources.py), a run of images at a time."""
        for lo in range(0, len(stack), FINGERPRINT_RUN):
            self.update(stack[lo : lo + FINGERPRINT_RUN])
        return self

    @property
    def sha256(self) -> bytes:
        return self._sha256.digest()

    def __reduce__(self):
        """Pickled as its values (hashlib's state does not pickle): a fingerprint taken on a
        cluster's worker comes back to the client finished, to be compared, not updated."""
        return Finished, (self.sha256, self.crc32)


class Finished(Fingerprint):
    """A fingerprint whose pieces were all taken (elsewhere, or before it was kept): its values,
    and nothing to add."""

    __slots__ = ("_digest",)

    def __init__(self, sha256: bytes, crc32: int):
        self._digest, self.crc32 = sha256, crc32

    def update(self, piece) -> "Fingerprint":
        raise TypeError("a finished fingerprint takes no more pieces")

    @property
    def sha256(self) -> bytes:
        return self._digest


class ArchiveDigest:
    """The archive's digest (hex): sha256 over every entry's (name, sha256 of what it gives
    back), in table order, each name with its length. Each part of an archive has its own check;
    this one catches parts that are each intact but moved, repeated or re-routed. Taken an entry
    at a time, as compress writes them and decompress gives them back: it holds no list of them
    (memory a file, of a million files)."""

    def __init__(self):
        self._hasher, self.count = hashlib.sha256(), 0

    def add(self, name: str, sha256: bytes) -> None:
        encoded = name.encode("utf-8", "surrogateescape")
        self._hasher.update(struct.pack("<I", len(encoded)) + encoded + sha256)
        self.count += 1

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()
