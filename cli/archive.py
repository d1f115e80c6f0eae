"""The .bb archive: a self-describing container.

    magic      8 bytes  b"\\x89BBZIP\\r\\n"  (non-ASCII first byte, like PNG)
    version    u16 LE   FORMAT_VERSION
    table      u32 LE decompressed length, u32 LE stored length, the entry table (cli/table.py)
    table crc  u32 LE   crc32 of the stored table bytes
    payload    the model stream record (models.api, in blocks), then the other entries' bytes

The model stream record names the model (name, full sha256, architecture), the numerics
version and the coding settings, and carries a sha256 per block. The table lists the entries:
each with its relative path, kind, format, mode, sizes, attributes and where its bytes are.
Every part has its own check (the table's crc32, each block's sha256, each classic image's or
JPEG transcode's crc32, xz's check of stored bytes), so a damaged block or blob loses only its
own entries; and the whole has one (the archive's digest, of every entry's name and what it
gives back, in order), so parts moved, repeated or re-routed are caught when everything is
decoded (`test`, a whole `decompress`, compress's own check).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from bbzip.models.files import ByteSource

from .header_schema import HeaderError, check_header
from .table import TableError, decode_table, encode_table

MAGIC = b"\x89BBZIP\r\n"
# 2: lanes grow from the stack (bbans Message.grow), deflated header; float numerics.
# 3: the model stream is a self-describing record (models.api) on the exact integer numerics.
# 4: the record's stream is cut into independent blocks (models.blocks); a columnar entry table.
# 5: the classic fallback (an array's images kept classic beside its model images), JPEG XL as
#    a classic codec, JPEG files transcoded. A format 4 table is a format 5 table without them,
#    so both are read.
# 6: the table's layout carries the archive's digest (cli/fingerprint.py: every entry's name and
#    what it gives back, in order), and each model stream block's digest binds its index
#    (models.api.BLOCK_DIGEST). Format 4 and 5 archives are read without those checks.
# 7: compact framing: a small table is deflated with a preset dictionary (its first byte says
#    how it is compressed, cli/table.py), and so is the model stream record's header
#    (models/record_dictionary.py): most of what a one-image archive spent beside its pixels.
FORMAT_VERSION = 7
READABLE_VERSIONS = (4, 5, 6, 7)


class ArchiveError(Exception):
    """The file is not a bbzip archive we can read, or it is damaged."""


@dataclass
class Archive:
    header: dict  # "entries" (a table.Table: entry dicts built when asked for), "payload_length", "model_stream"
    payload: ByteSource  # read where an entry or block is needed
    names: list = field(default_factory=list)  # the entries' names, normalised and unique
    model_stream: ByteSource | None = field(default=None, repr=False)

    def blob(self, entry: dict) -> bytes:
        try:
            return self.payload.read(entry["offset"], entry["length"])
        except EOFError as error:
            raise ArchiveError(f"archive changed while it was read ({error})") from None


def archive_head(header: dict) -> bytes:
    """Everything before the payload: magic, version, the table and its crc32."""
    table, raw_length = encode_table(header)
    return b"".join([MAGIC, struct.pack("<HII", FORMAT_VERSION, raw_length, len(table)), table, struct.pack("<I", zlib.crc32(table))])


def write_archive(header: dict, payload: bytes) -> bytes:
    return archive_head(header) + payload


def read_archive(source: bytes | ByteSource, name: str = "archive") -> Archive:
    """Parse and check an archive's framing and table (the payload is read later, where it is
    needed). Raises ArchiveError."""
    source = source if isinstance(source, ByteSource) else ByteSource(source)
    data = source.read(0, min(len(source), len(MAGIC) + 10))
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise ArchiveError(f"{name}: not in bbzip format")
    pos = len(MAGIC)
    if len(data) < pos + 2:
        raise ArchiveError(f"{name}: truncated archive (header)")
    (version,) = struct.unpack_from("<H", data, pos)
    pos += 2
    if version > FORMAT_VERSION:
        raise ArchiveError(f"{name}: format version {version} is newer than this bbzip reads ({FORMAT_VERSION}); upgrade bbzip")
    if version == 2:
        raise ArchiveError(f"{name}: made by bbzip 0.1 (format 2), whose float numerics decode only on a machine whose "
                           "float maths match the writer's; open it with bbzip 0.1 there, then compress it again")
    if version == 3:
        raise ArchiveError(f"{name}: made by bbzip 0.2 (format 3, one model stream); open it with bbzip 0.2, "
                           "then compress it again")
    if version not in READABLE_VERSIONS:
        raise ArchiveError(f"{name}: unknown format version {version}")
    if len(data) < pos + 8:
        raise ArchiveError(f"{name}: truncated archive (header)")
    raw_length, table_length = struct.unpack_from("<II", data, pos)
    pos += 8
    if len(source) < pos + table_length + 4:
        raise ArchiveError(f"{name}: truncated archive (table)")
    table_bytes = source.read(pos, table_length)
    pos += table_length
    (crc,) = struct.unpack("<I", source.read(pos, 4))
    pos += 4
    if zlib.crc32(table_bytes) != crc:
        raise ArchiveError(f"{name}: damaged archive (table checksum mismatch)")
    payload = source.part(pos, len(source) - pos)
    try:
        table = decode_table(table_bytes, raw_length, codec_byte=version >= 7)
        header = {"entries": table, "payload_length": table.layout["payload_length"]}
        for optional in ("model_stream", "digest"):
            if optional in table.layout:
                header[optional] = table.layout[optional]
        if version >= 6 and "digest" not in header:
            raise TableError("no digest of its entries")
        names = check_header(header, len(payload))
    except (TableError, HeaderError) as error:
        raise ArchiveError(f"{name}: damaged archive ({error})") from None
    stream = header.get("model_stream", {"offset": 0, "length": 0})
    return Archive(header, payload, names=names, model_stream=payload.part(stream["offset"], stream["length"]))
