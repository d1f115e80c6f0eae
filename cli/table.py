"""The archive's entry table: columns, not one JSON object per entry.

A folder of thousands of small images is the common case, so what an entry costs beside its
pixels matters. Each field is a column of fixed-width little-endian integers (the narrowest
width that holds the column), names are front-coded (the bytes shared with the previous name,
then the rest), modification times are delta-coded, and the whole table is compressed: with
raw LZMA2, or (format 7 on) where that is smaller, as a small table's is, with raw deflate
primed with a typical layout (cli/table_dictionary.py); the first stored byte says which.
Fields only some kinds of entry have (a link's target, an array's shape, an .npz file's
members) are one JSON list beside the columns. Checksums: the table has a
crc32; each classic image and JPEG transcode its own crc32 (the classic images of an array one
crc32 for all of them); model images are covered by their block's sha256 and stored bytes by
xz's own check, so most entries carry none.

The table once decompressed (all integers little-endian):

    u32 length of the layout JSON, the layout JSON (entry count, the format and mode names the
    columns index, each column's width and byte length, the model stream's place, the payload
    length), then the columns in COLUMNS order, the name bytes, the extras JSON.

Decoding never trusts a count: every length is checked against the bytes that back it before
anything is allocated, and entries are built one at a time when asked for.
"""
from __future__ import annotations

import array
import json
import lzma
import zlib

import numpy as np

from .array_entries import has_alpha
from .entries import KINDS as ENTRY_KINDS
from .file_entries import ALPHA_MODES
from .table_dictionary import TABLE_DICTIONARY

KINDS = tuple(ENTRY_KINDS)  # the kind column's values, in the order of cli/entries.py's KINDS (the format's)
# members: an .npz, kept member by member; transcoded: a JPEG file kept as JPEG XL
STORES = ("model", "classic", "stored", "link", "members", "transcoded")
CODECS = ("", "PNG", "WEBP", "JXL")
SCALES = (0, 1, 255)
NO_PERMISSIONS = 0xFFFF
COLUMNS = ("kind", "store", "format", "mode", "codec", "width", "height", "items", "scale", "permissions",
           "mtime_delta", "name_shared", "name_rest", "blob_length", "crc32", "size")
WIDTHS = {"u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64, "i8": np.int64}
# The fields each kind keeps in the extras list (cli/entry_kind.py)
EXTRA_FIELDS = {name: kind.extras for name, kind in ENTRY_KINDS.items() if kind.extras}
CHECKED_STORES = ("classic", "transcoded")  # the entries with a crc32 in their column (and carries_crc32's)
# One letter per classic image of an array, in its extras' `fallback` (cli/coding.py)
FALLBACK_CODES = {"PNG": "P", "WEBP": "W", "JXL": "J"}
MAX_TABLE = 1 << 28  # bytes of the table once decompressed
MAX_ENTRIES = 1 << 22
MAX_NAME_BYTES = 4 * 4096  # of one name: MAX_NAME characters of UTF-8 (cli/header_schema.py)
# Of all names decoded: front coding makes a name of 4 KB one byte of the table, so without a
# bound a table of a few hundred bytes could hold gigabytes of names (a million names average
# 268 bytes within it; encode_table refuses to write more).
MAX_NAMES_TOTAL = 1 << 28
CHUNK = 4096  # entries whose rows and names are derived together (Table)
# No blob bbzip writes is shorter (a 1x1 image's JPEG XL is 18 bytes, xz of nothing 32), so the
# blobs an archive declares are at most its payload's length / MIN_BLOB, whatever its table says.
MIN_BLOB = 16
MAX_LAYOUT = 1 << 16
MAX_EXTRAS_CONTAINERS_PER_BYTE = 1 / 8  # a legitimate extras list has far fewer '{' and '[' than this
# The columns of Table.rows, one row per entry: what an entry's dict is built from (beside its
# name, its extras and its blobs' places); crc32 and size are -1 where it has none.
ROW_FIELDS = ("kind", "store", "format", "mode", "codec", "width", "height", "items", "scale", "permissions", "mtime_ns",
              "crc32", "size", "first_blob", "blobs")
_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 24}]
ENCODER_DICTIONARY = 1 << 20
# The stored table's first byte (format 7 on): how the rest is compressed
LZMA_TABLE, PRIMED_DEFLATE_TABLE = 0, 1
# Beyond this many raw bytes the entries outweigh the layout and LZMA wins: deflate is not tried
PRIMED_DEFLATE_LIMIT = 1 << 16


class TableError(ValueError):
    """The table is damaged or breaks its own layout; the message says where."""


def has_alpha_blob(entry: dict) -> bool:
    """A model image of a mode with alpha, whose alpha plane is its one blob (cli/file_entries.py)."""
    mode = entry.get("mode")
    return entry.get("kind") == "image" and entry.get("store") == "model" and isinstance(mode, str) and mode in ALPHA_MODES


def carries_crc32(entry: dict) -> bool:
    """Whether an entry has a crc32 of what it gives back: classic images and transcoded JPEGs
    (their encoding is bbzip's, checked here), and model images with an alpha blob (which no
    block sha256 covers). Model images are covered by their block's sha256, stored bytes by xz's
    check."""
    return entry.get("store") in CHECKED_STORES or has_alpha_blob(entry)


# -- writing -----------------------------------------------------------------------------------
def encode_table(header: dict) -> tuple[bytes, int]:
    """(compressed table, its decompressed length) for a header {"entries": [dict, ...],
    "payload_length": n, optional "model_stream": {offset, length, items}}. The entries are
    gone over twice, each dict let go of once its values are in the columns (8 bytes a value:
    compress makes them as they are asked for, coding.EntryHeaders)."""
    entries = header["entries"]
    formats, modes, count = set(), {""}, 0
    for entry in entries:
        formats.add(entry["format"])
        modes.add(entry.get("mode", ""))
        count += 1
    formats, modes = sorted(formats), sorted(modes)
    columns = {name: _Column(signed=name == "mtime_delta") for name in COLUMNS}
    extras, names, previous, previous_mtime, names_total = [], bytearray(), b"", 0, 0
    for entry in entries:
        name = entry["name"].encode()
        names_total += len(name)
        if names_total > MAX_NAMES_TOTAL:  # (compress refuses such inputs before coding them: cli/inputs.py)
            raise TableError(f"the names add up to more than {MAX_NAMES_TOTAL >> 20} MiB")
        shared = _shared_prefix(previous, name)
        columns["name_shared"].append(shared)
        columns["name_rest"].append(len(name) - shared)
        names += name[shared:]
        previous = name
        columns["kind"].append(KINDS.index(entry["kind"]))
        columns["store"].append(STORES.index(entry["store"]))
        columns["format"].append(formats.index(entry["format"]))
        columns["mode"].append(modes.index(entry.get("mode", "")))
        columns["codec"].append(CODECS.index(entry.get("codec", "")))
        columns["width"].append(entry.get("width", 0))
        columns["height"].append(entry.get("height", 0))
        columns["items"].append(entry["items"])
        columns["scale"].append(SCALES.index(entry.get("scale", 0)))
        columns["permissions"].append(entry.get("permissions", NO_PERMISSIONS))
        mtime = entry.get("mtime_ns", previous_mtime)
        # modulo 2^64, as the reader's int64 running sum adds them up: a file of 1700 after one of 2300
        columns["mtime_delta"].append((mtime - previous_mtime + (1 << 63)) % (1 << 64) - (1 << 63))
        previous_mtime = mtime
        columns["blob_length"].extend(blob["length"] for blob in entry["blobs"])
        if carries_crc32(entry):
            columns["crc32"].append(entry["crc32"])
        if entry["kind"] == "stored":
            columns["size"].append(entry["size"])
        if entry["kind"] in EXTRA_FIELDS:
            extras.append({field: entry[field] for field in EXTRA_FIELDS[entry["kind"]] if field in entry})
    pieces, layout_columns = [], {}
    for name in COLUMNS:
        dtype, count_values = columns[name].finished()
        layout_columns[name] = [_width_name(dtype), count_values * dtype.itemsize]
        pieces.extend(columns[name].pieces(dtype))
    extras_bytes = json.dumps(extras, separators=(",", ":")).encode() if extras else b""
    layout = {"entries": count, "formats": formats, "modes": modes, "columns": layout_columns,
              "names": len(names), "extras": len(extras_bytes), "payload_length": header["payload_length"]}
    for optional in ("model_stream", "digest"):
        if optional in header:
            layout[optional] = header[optional]
    layout_bytes = json.dumps(layout, separators=(",", ":"), sort_keys=True).encode()
    pieces = [len(layout_bytes).to_bytes(4, "little"), layout_bytes, *pieces, names, extras_bytes]
    return compress_table(pieces), sum(len(piece) for piece in pieces)


def compress_table(pieces: list) -> bytes:
    """The stored form of a table's raw bytes, given as the pieces they are made of (bytes-like,
    each a byte a unit: not joined, where the table of a large folder was held three times):
    its codec byte, then the smaller of LZMA and (for a small table) deflate primed with
    TABLE_DICTIONARY."""
    length = sum(len(piece) for piece in pieces)
    # The encoder's dictionary no larger than the table (at least LZMA2's least) and than
    # ENCODER_DICTIONARY: it takes about ten times its size (190 MB at 16 MiB), and a table's
    # repeats are near one another (a column's runs, a folder's names). The decoder's 16 MiB
    # reads any.
    filters = [{**_FILTERS[0], "dict_size": min(ENCODER_DICTIONARY, max(1 << 12, length))}]
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_RAW, filters=filters)
    stored = b"".join([bytes([LZMA_TABLE]), *(compressor.compress(piece) for piece in pieces), compressor.flush()])
    if length <= PRIMED_DEFLATE_LIMIT:
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=TABLE_DICTIONARY)
        primed = bytes([PRIMED_DEFLATE_TABLE]) + deflater.compress(b"".join(pieces)) + deflater.flush()
        stored = min(stored, primed, key=len)
    return stored


def _shared_prefix(a: bytes, b: bytes) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class _Column:
    """A column's values as they are appended, each chunk of them narrowed when it is full: 8
    bytes a value were most of what writing the table of a large folder held."""

    def __init__(self, signed: bool):
        self.signed, self.parts, self.pending = signed, [], array.array("q")

    def append(self, value: int) -> None:
        self.pending.append(value)
        if len(self.pending) >= CHUNK:
            self._narrow()

    def extend(self, values) -> None:
        self.pending.extend(values)
        if len(self.pending) >= CHUNK:
            self._narrow()

    def _narrow(self) -> None:
        self.parts.append(_narrowest(self.pending, self.signed))
        self.pending = array.array("q")

    def finished(self) -> tuple[np.dtype, int]:
        """(width, count) of the values: the narrowest width that holds them all (the widest
        part's, as np.concatenate would widen them)."""
        if self.pending or not self.parts:
            self._narrow()
        return np.result_type(*self.parts), sum(len(part) for part in self.parts)

    def pieces(self, dtype) -> list:
        """The values' bytes in `dtype`, a part at a time (a part of another width copied)."""
        return [memoryview(part.astype(dtype, copy=False)).cast("B") for part in self.parts]


def _narrowest(values: array.array, signed: bool) -> np.ndarray:
    """The column's values (signed 64-bit, none negative unless `signed`) in the narrowest
    unsigned width that holds them (int64 if signed)."""
    column = np.frombuffer(values, dtype=np.int64)
    if signed:
        return column.copy()
    if column.min(initial=0) < 0:
        raise TableError("a negative value in an unsigned column")
    top = int(column.max(initial=0))  # (an int64 fits u8 to u64)
    return column.astype(next(dtype for dtype in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(dtype).max))


def _width_name(dtype) -> str:
    return next(name for name, candidate in WIDTHS.items() if np.dtype(candidate) == dtype)


# -- reading -----------------------------------------------------------------------------------
def decode_table(stored: bytes, raw_length: int, codec_byte: bool = True) -> "Table":
    """The table of its stored bytes; `codec_byte` False for archives before format 7, whose
    tables are all LZMA and say nothing of it."""
    return Table(decompress_table(stored, raw_length, codec_byte))


def decompress_table(stored: bytes, raw_length: int, codec_byte: bool = True) -> bytes:
    """A table's raw bytes (compress_table's input); TableError unless they are exactly
    `raw_length` long (never more is inflated)."""
    if not 4 <= raw_length <= MAX_TABLE:
        raise TableError("table size out of bounds")
    codec, compressed = (stored[0], stored[1:]) if codec_byte and stored else (LZMA_TABLE, stored)
    try:
        if codec == LZMA_TABLE:
            raw = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_FILTERS).decompress(compressed, max_length=raw_length + 1)
        elif codec == PRIMED_DEFLATE_TABLE:
            inflater = zlib.decompressobj(-15, zdict=TABLE_DICTIONARY)
            raw = inflater.decompress(compressed, raw_length + 1)
            if not inflater.eof or inflater.unused_data:
                raise TableError("table does not decompress to its declared size")
        else:
            raise TableError(f"unknown table compression {codec}")
    except (lzma.LZMAError, zlib.error):
        raise TableError("table does not decompress") from None
    if len(raw) != raw_length:
        raise TableError("table does not decompress to its declared size")
    return raw


class Table:
    """The decoded columns; `layout` holds the top-level fields, `table[i]` builds one entry.

    Nothing is held per entry beyond the table's own bytes: what an entry's dict is built from
    (its row of numbers, its name) is derived for a chunk of CHUNK entries at a time, from the
    running sums at each chunk's start, and the last few chunks are kept. A million entries
    once cost about 280 bytes each here (a row of 15 int64s, a str a name, indices per entry);
    their columns are about 20."""

    def __init__(self, raw: bytes):
        layout_length = int.from_bytes(raw[:4], "little")
        if layout_length > min(MAX_LAYOUT, len(raw) - 4):
            raise TableError("layout out of bounds")
        try:
            layout = json.loads(raw[4 : 4 + layout_length])
        except (ValueError, RecursionError):  # RecursionError: nested deeper than any layout is
            raise TableError("layout is not valid") from None
        self.layout = _checked_layout(layout)
        self.count = layout["entries"]
        position = 4 + layout_length
        self.columns = {}
        for name in COLUMNS:
            width, length = layout["columns"][name]
            if position + length > len(raw) or length % np.dtype(WIDTHS[width]).itemsize:
                raise TableError(f"column {name} out of bounds")
            self.columns[name] = np.frombuffer(raw, dtype=WIDTHS[width], count=length // np.dtype(WIDTHS[width]).itemsize,
                                               offset=position)
            position += length
        for name in ("kind", "store", "format", "mode", "codec", "width", "height", "items", "scale", "permissions",
                     "mtime_delta", "name_shared", "name_rest"):
            if len(self.columns[name]) != self.count:
                raise TableError(f"column {name} does not have one value per entry")
        names_end = position + layout["names"]
        if names_end + layout["extras"] != len(raw):
            raise TableError("names and extras do not fill the table")
        self._names_bytes = memoryview(raw)[position:names_end]
        self._check_enumerations()
        kinds_with_extras = [KINDS.index(k) for k in EXTRA_FIELDS]
        self._extra_entries = np.flatnonzero(np.isin(self.columns["kind"], kinds_with_extras))
        self._extras = self._decode_extras(memoryview(raw)[names_end:])
        self._extra_blobs = self._blobs_of_extras()
        self._anchors = self._chunk_anchors()
        self._rows_cache, self._names_cache = Recent(), Recent()
        self._name_anchors = self._check_names()

    def _check_enumerations(self) -> None:
        limits = {"kind": len(KINDS), "store": len(STORES), "format": len(self.layout["formats"]),
                  "mode": len(self.layout["modes"]), "codec": len(CODECS), "scale": len(SCALES)}
        for name, limit in limits.items():
            column = self.columns[name]
            if len(column) and (int(column.max()) >= limit or int(column.min()) < 0):
                raise TableError(f"column {name} has a value out of range")

    def _check_names(self) -> list[bytes]:
        """Decode every name once, refusing any that is not UTF-8 or too long, and all of them
        together past MAX_NAMES_TOTAL (a name of 4 KB front-coded in one byte: a table of a few
        hundred bytes could otherwise make gigabytes of names); return the name before each
        chunk, from which that chunk's names are decoded again when they are needed (the last
        few chunks' are kept as they are: a table of up to Recent.KEPT chunks is decoded once)."""
        if int(self.columns["name_rest"].astype(np.int64).sum()) != len(self._names_bytes):
            raise TableError("names do not add up")
        anchors, previous, total = [], b"", 0
        for chunk in self.chunks:
            anchors.append(previous)
            names = self._names_cache.get(chunk, lambda number: self._decoded_names(number, anchors[number]))
            total += sum(map(len, names))
            if total > MAX_NAMES_TOTAL:
                raise TableError(f"the names add up to more than {MAX_NAMES_TOTAL >> 20} MiB")
            previous = names[-1].encode()
        return anchors

    def _decoded_names(self, chunk: int, previous: bytes) -> list[str]:
        """The names of a chunk, after the name `previous`."""
        lo, hi = self._span(chunk)
        shared, rest = self.columns["name_shared"][lo:hi].tolist(), self.columns["name_rest"][lo:hi].tolist()
        position = int(self._anchors["name_position"][chunk])
        names, data = [], self._names_bytes
        for keep, length in zip(shared, rest):
            if keep > len(previous):
                raise TableError("a name shares more than the previous name has")
            if keep + length > MAX_NAME_BYTES:
                raise TableError("a name is too long")
            name = previous[:keep] + data[position : position + length]
            position += length
            try:
                names.append(name.decode())
            except UnicodeDecodeError:
                raise TableError("a name is not UTF-8") from None
            previous = name
        return names

    def _decode_extras(self, data: memoryview) -> list:
        wanted = len(self._extra_entries)
        if not wanted:
            if data:
                raise TableError("extras for entries that have none")
            return []
        data = bytes(data)
        containers = data.count(b"{") + data.count(b"[")
        if containers > 16 + len(data) * MAX_EXTRAS_CONTAINERS_PER_BYTE:
            raise TableError("extras nested beyond any real entry")
        try:
            extras = json.loads(data)
        except (ValueError, RecursionError):
            raise TableError("extras are not valid") from None
        if not isinstance(extras, list) or len(extras) != wanted or not all(isinstance(e, dict) for e in extras):
            raise TableError("extras do not match the entries")
        return extras

    def _blobs_of_extras(self) -> np.ndarray:
        """The blobs of each entry with extras beyond those its columns say (an .npz's members,
        an array's alpha planes and classic images)."""
        counts = np.zeros(len(self._extras), dtype=np.int64)
        kinds = self.columns["kind"]
        for number, (index, extra) in enumerate(zip(self._extra_entries.tolist(), self._extras)):
            if kinds[index] == KINDS.index("npz"):
                members = extra.get("members")
                if not isinstance(members, list):
                    raise TableError("an npz entry without its members")
                # a blob per stored member, and per RGBA image member (its alpha planes)
                counts[number] = sum(1 for m in members if isinstance(m, dict) and
                                     (m.get("store") == "stored" or m.get("store") == "model" and has_alpha(m)))
            if kinds[index] == KINDS.index("array"):  # an RGBA stack's alpha planes
                counts[number] = has_alpha(extra)
            if "fallback" in extra:  # one blob per classic image
                codecs = extra["fallback"].get("codecs") if isinstance(extra["fallback"], dict) else None
                if not isinstance(codecs, str):
                    raise TableError("an array's classic images without their codecs")
                counts[number] += len(codecs)
        return counts

    def _chunk_masks(self, lo: int, hi: int):
        """(checked, stored, blob counts) of entries lo..hi - 1: which have a crc32 (the checked
        stores, and model images with an alpha blob) and which a size, and each one's blobs."""
        kinds, stores = self.columns["kind"][lo:hi], self.columns["store"][lo:hi]
        alpha_modes = [index for index, mode in enumerate(self.layout["modes"]) if mode in ALPHA_MODES]
        alpha = (kinds == KINDS.index("image")) & (stores == STORES.index("model")) & np.isin(self.columns["mode"][lo:hi], alpha_modes)
        checked = np.isin(stores, [STORES.index(s) for s in CHECKED_STORES]) | alpha
        stored = kinds == KINDS.index("stored")
        blob_counts = (stored | (stores == STORES.index("classic")) | alpha).astype(np.int64)
        first, last = np.searchsorted(self._extra_entries, [lo, hi])
        blob_counts[self._extra_entries[first:last] - lo] += self._extra_blobs[first:last]
        return checked, stored, blob_counts

    def _chunk_anchors(self) -> dict[str, np.ndarray]:
        """Each running sum at the start of each chunk (and past the last): the entries with a
        crc32 and with a size before it, the blobs, the payload offset of its first blob, the
        modification time (int64, wrapping as the writer's deltas do) and its first name byte.
        The counts and the blobs' extent are checked against the columns here."""
        sums = {name: [0] for name in ("crc32", "size", "blob", "name_position")}
        mtimes = [np.int64(0)]
        for chunk in self.chunks:
            lo, hi = self._span(chunk)
            checked, stored, blob_counts = self._chunk_masks(lo, hi)
            for name, values in (("crc32", checked), ("size", stored), ("blob", blob_counts),
                                 ("name_position", self.columns["name_rest"][lo:hi])):
                sums[name].append(sums[name][-1] + int(values.sum(dtype=np.int64)))
            mtimes.append(mtimes[-1] + self.columns["mtime_delta"][lo:hi].astype(np.int64).sum())  # wraps, as it was written
        if sums["crc32"][-1] != len(self.columns["crc32"]) or sums["size"][-1] != len(self.columns["size"]):
            raise TableError("crc32 or size column does not match the entries")
        if sums["blob"][-1] != len(self.columns["blob_length"]):
            raise TableError("blob lengths do not match the entries")
        lengths = self.columns["blob_length"]
        if len(lengths) and int(lengths.min()) < MIN_BLOB:
            raise TableError(f"a blob shorter than any bbzip writes ({MIN_BLOB} bytes)")
        stream_end, payload = self.layout.get("model_stream", {}).get("length", 0), self.layout["payload_length"]
        # A float sum first: lengths of u8 could wrap an integer one back below the payload's length
        if len(lengths) and (float(lengths.sum(dtype=np.float64)) > payload + 1
                             or stream_end + int(lengths.sum(dtype=np.int64)) > payload):
            raise TableError("blobs run past the payload")
        first_blobs = np.array(sums["blob"], dtype=np.int64)
        ends = np.concatenate([[stream_end], stream_end + np.cumsum(lengths, dtype=np.int64)])
        return {**{name: np.array(values, dtype=np.int64) for name, values in sums.items()}, "blob": first_blobs,
                "offset": ends[first_blobs], "mtime": np.array(mtimes, dtype=np.int64)}

    def chunk_rows(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, blob offsets) of a chunk: one row of int64 per entry with every number
        `entry` reads (ROW_FIELDS; -1 for a crc32 or size it has none of), and the payload
        offset of each of the chunk's blobs. A row's tolist() costs far less than a dozen numpy
        scalars: list, test and decompress read a table of a million entries several times over
        (and the schema checks them by these rows)."""
        return self._rows_cache.get(chunk, self._chunk_rows)

    def _chunk_rows(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self._span(chunk)
        c, anchors = self.columns, self._anchors
        checked, stored, blob_counts = self._chunk_masks(lo, hi)

        def where_present(values, present, before):  # -1 for the entries without one
            index = before + np.cumsum(present) - 1
            return np.where(present, values[np.maximum(index, 0)].astype(np.int64) if len(values) else -1, -1)

        mtimes = np.cumsum(c["mtime_delta"][lo:hi], dtype=np.int64)
        mtimes += anchors["mtime"][chunk]  # (int64 arrays wrap, as the writer's deltas do)
        first_blob = anchors["blob"][chunk] + np.cumsum(blob_counts) - blob_counts
        fields = {**{name: c[name][lo:hi] for name in ROW_FIELDS[:10]}, "mtime_ns": mtimes,
                  "crc32": where_present(c["crc32"], checked, anchors["crc32"][chunk]),
                  "size": where_present(c["size"], stored, anchors["size"][chunk]), "first_blob": first_blob,
                  "blobs": blob_counts}
        rows = np.empty((hi - lo, len(ROW_FIELDS)), dtype=np.int64)
        for number, name in enumerate(ROW_FIELDS):
            rows[:, number] = fields[name]  # a u8 above 2^63 wraps negative: an entry without that field, refused by the schema
        blobs = c["blob_length"][anchors["blob"][chunk] : anchors["blob"][chunk + 1]]
        offsets = anchors["offset"][chunk] + np.cumsum(blobs, dtype=np.int64) - blobs.astype(np.int64)
        return rows, offsets

    def chunk_names(self, chunk: int) -> list[str]:
        """The names (as the table has them) of a chunk's entries."""
        return self._names_cache.get(chunk, lambda number: self._decoded_names(number, self._name_anchors[number]))

    @property
    def chunks(self) -> range:
        return range(-(-self.count // CHUNK))

    def _span(self, chunk: int) -> tuple[int, int]:
        """(first, past the last) index of a chunk's entries."""
        return chunk * CHUNK, min(chunk * CHUNK + CHUNK, self.count)

    def chunk_has_extras(self, chunk: int) -> np.ndarray:
        """Which of a chunk's entries have extras (an array, an .npz, a link)."""
        lo, hi = self._span(chunk)
        has = np.zeros(hi - lo, dtype=bool)
        first, last = np.searchsorted(self._extra_entries, [lo, hi])
        has[self._extra_entries[first:last] - lo] = True
        return has

    def __len__(self) -> int:
        return self.count

    def items_column(self) -> np.ndarray:
        """Every entry's model items, without building the entries."""
        return self.columns["items"].astype(np.int64)

    def with_model_items(self, blobs: bool = True):
        """(index, entry) of the entries that hold model items, in order; the others not built."""
        items = self.columns["items"]
        for chunk in self.chunks:
            lo, hi = self._span(chunk)
            yield from self._entries(chunk, (np.flatnonzero(items[lo:hi]) + lo).tolist(), blobs)

    def blob_bytes(self):
        """Every entry's bytes in the payload beside the model stream (its blobs' lengths,
        summed), in order, a chunk at a time."""
        for chunk in self.chunks:
            rows, _ = self.chunk_rows(chunk)
            first, count = rows[:, ROW_FIELDS.index("first_blob")], rows[:, ROW_FIELDS.index("blobs")]
            lengths = self.columns["blob_length"][self._anchors["blob"][chunk] : self._anchors["blob"][chunk + 1]]
            sums = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
            local = first - self._anchors["blob"][chunk]
            yield from (sums[local + count] - sums[local]).tolist()

    def __iter__(self):
        for chunk in self.chunks:
            yield from (entry for _, entry in self._entries(chunk, range(*self._span(chunk))))

    def __getitem__(self, index: int) -> dict:
        return self.entry(index)

    def entry(self, index: int, blobs: bool = True) -> dict:
        """One entry as a dict of its fields, built when asked for; without `blobs`, without its
        blobs' places (what a listing needs is the rest, and blob_bytes)."""
        index = index + self.count if index < 0 else index
        if not 0 <= index < self.count:
            raise IndexError(index)
        return next(self._entries(index // CHUNK, (index,), blobs))[1]

    def _entries(self, chunk: int, indices, blobs: bool = True):
        """(index, entry) of the given entries of a chunk, in the order given."""
        rows, offsets = self.chunk_rows(chunk)
        names, lo, first_blob = self.chunk_names(chunk), chunk * CHUNK, int(self._anchors["blob"][chunk])
        formats, modes, blob_lengths = self.layout["formats"], self.layout["modes"], self.columns["blob_length"]
        for index in indices:
            (kind, store, format_, mode, codec, width, height, items, scale, permissions, mtime, crc32, size, first,
             count) = rows[index - lo].tolist()
            kind = KINDS[kind]
            entry = {"name": names[index - lo], "kind": kind, "store": STORES[store], "items": items, "format": formats[format_]}
            if blobs:
                entry["blobs"] = [{"offset": offset, "length": length} for offset, length in
                                  zip(offsets[first - first_blob : first - first_blob + count].tolist(),
                                      blob_lengths[first : first + count].tolist())] if count else []
            mode = modes[mode]
            if mode:
                entry["mode"] = mode
            if width or height:
                entry["width"], entry["height"] = width, height
            if codec:
                entry["codec"] = CODECS[codec]
            if scale:
                entry["scale"] = SCALES[scale]
            if permissions != NO_PERMISSIONS:
                entry["permissions"], entry["mtime_ns"] = permissions, mtime
            if crc32 >= 0:
                entry["crc32"] = crc32
            if size >= 0:
                entry["size"] = size
            if kind in EXTRA_FIELDS:
                extra = self._extras[int(np.searchsorted(self._extra_entries, index))]
                entry.update({key: value for key, value in extra.items() if key not in entry})
            yield index, entry


class Recent:
    """The last few chunks' derived values, by chunk number: the table is read in order, a
    chunk at a time, by every pass."""

    KEPT = 4

    def __init__(self):
        self._held = {}

    def get(self, chunk: int, make):
        if chunk in self._held:
            self._held[chunk] = self._held.pop(chunk)  # most recent last
        else:
            self._held[chunk] = make(chunk)
            if len(self._held) > self.KEPT:
                del self._held[next(iter(self._held))]
        return self._held[chunk]


def _checked_layout(layout) -> dict:
    required = {"entries", "formats", "modes", "columns", "names", "extras", "payload_length"}
    if not isinstance(layout, dict) or not required <= set(layout) or set(layout) - required - {"model_stream", "digest"}:
        raise TableError("layout fields missing or unexpected")
    digest = layout.get("digest", "0" * 64)
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise TableError("layout digest is not a sha256")
    for key, most in (("entries", MAX_ENTRIES), ("names", MAX_TABLE), ("extras", MAX_TABLE), ("payload_length", 1 << 48)):
        value = layout[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
            raise TableError(f"layout {key} out of bounds")
    for key in ("formats", "modes"):
        values = layout[key]
        if not isinstance(values, list) or len(values) > 256 or not all(isinstance(v, str) and len(v) <= 16 for v in values):
            raise TableError(f"layout {key} is not a short list of names")
    stream = layout.get("model_stream", {"offset": 0, "length": 0, "items": 0})
    if not isinstance(stream, dict) or set(stream) != {"offset", "length", "items"} or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 48 for v in stream.values()):
        raise TableError("layout model_stream is not a place in the payload")
    columns = layout["columns"]
    if not isinstance(columns, dict) or set(columns) != set(COLUMNS):
        raise TableError("layout columns missing or unexpected")
    for name, spec in columns.items():
        if not (isinstance(spec, list) and len(spec) == 2 and spec[0] in WIDTHS and isinstance(spec[1], int)
                and not isinstance(spec[1], bool) and 0 <= spec[1] <= MAX_TABLE):
            raise TableError(f"column {name} has a bad width or length")
    return layout
