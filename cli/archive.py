"""The .bb archive: a self-describing container.

    magic      8 bytes  b"\\x89BBZIP\\r\\n"  (non-ASCII first byte, like PNG)
    version    u16 LE   FORMAT_VERSION
    header     u32 LE length, then UTF-8 JSON, deflated (zlib)
    header crc u32 LE   crc32 of the deflated header bytes
    payload    the model stream then the classic blobs, at offsets given in the header
    payload    32 bytes sha256 of the payload

The model stream is a models.api record: it names the model (name, full sha256, architecture),
the numerics version and the coding settings. The header lists the entries:
each with its relative path, kind ("model", "classic" or "stored"), format, mode, sizes and a
crc32 of its decoded pixels (or bytes); one sha256 covers the decoded pixels of all entries in
order. So every entry is checked as it is decoded, and the whole archive once more at the end,
at 4 bytes an entry rather than 32 (a folder of thousands of small images stays small).
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field

from .header_schema import HeaderError, check_header

MAGIC = b"\x89BBZIP\r\n"
# 2: lanes grow from the stack (bbans Message.grow), deflated header; float numerics.
# 3: the model stream is a self-describing record (models.api) on the exact integer numerics.
# 4: the record's stream is cut into independent blocks (models.blocks).
FORMAT_VERSION = 4
_MAX_HEADER = 64 << 20  # bytes, deflated or not: a damaged length cannot make us allocate more


class ArchiveError(Exception):
    """The file is not a bbzip archive we can read, or it is damaged."""


@dataclass
class Archive:
    header: dict
    payload: bytes = b""
    names: list = field(default_factory=list)  # the entries' names, normalised and unique
    model_stream: bytes = field(default=b"", repr=False)

    def blob(self, entry: dict) -> bytes:
        start, length = entry["offset"], entry["length"]
        return self.payload[start : start + length]


def entry_checksum(data: bytes) -> int:
    return zlib.crc32(data)


def write_archive(header: dict, payload: bytes) -> bytes:
    header_bytes = zlib.compress(json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), 9)
    return b"".join(
        [
            MAGIC,
            struct.pack("<HI", FORMAT_VERSION, len(header_bytes)),
            header_bytes,
            struct.pack("<I", zlib.crc32(header_bytes)),
            payload,
            hashlib.sha256(payload).digest(),
        ]
    )


def read_archive(data: bytes, name: str = "archive") -> Archive:
    """Parse and check an archive's framing and checksums. Raises ArchiveError."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise ArchiveError(f"{name}: not in bbzip format")
    pos = len(MAGIC)
    if len(data) < pos + 6:
        raise ArchiveError(f"{name}: truncated archive (header)")
    version, header_length = struct.unpack_from("<HI", data, pos)
    pos += 6
    if version > FORMAT_VERSION:
        raise ArchiveError(f"{name}: format version {version} is newer than this bbzip reads ({FORMAT_VERSION}); upgrade bbzip")
    if version == 2:
        raise ArchiveError(f"{name}: made by bbzip 0.1 (format 2), whose float numerics decode only on a machine whose "
                           "float maths match the writer's; open it with bbzip 0.1 there, then compress it again")
    if version == 3:
        raise ArchiveError(f"{name}: made by bbzip 0.2 (format 3, one model stream); open it with bbzip 0.2, "
                           "then compress it again")
    if version != FORMAT_VERSION:
        raise ArchiveError(f"{name}: unknown format version {version}")
    if header_length > _MAX_HEADER or len(data) < pos + header_length + 4 + 32:
        raise ArchiveError(f"{name}: truncated archive (header)")
    header_bytes = data[pos : pos + header_length]
    pos += header_length
    (crc,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if zlib.crc32(header_bytes) != crc:
        raise ArchiveError(f"{name}: damaged archive (header checksum mismatch)")
    try:
        inflater = zlib.decompressobj()
        header_json = inflater.decompress(header_bytes, _MAX_HEADER)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("header does not inflate to a bounded, complete JSON document")
        header = json.loads(header_json)
    except (ValueError, zlib.error):
        raise ArchiveError(f"{name}: damaged archive (header is not valid)") from None
    payload, digest = data[pos:-32], data[-32:]
    if hashlib.sha256(payload).digest() != digest:
        raise ArchiveError(f"{name}: damaged or truncated archive (payload checksum mismatch)")
    try:
        names = check_header(header, len(payload))
    except HeaderError as error:
        raise ArchiveError(f"{name}: damaged archive ({error})") from None
    stream = header.get("model_stream", {"offset": 0, "length": 0})
    archive = Archive(header, payload, names=names)
    archive.model_stream = archive.blob(stream)
    return archive
