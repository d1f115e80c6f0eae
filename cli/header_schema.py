"""The archive header's schema: every field's type and bounds, checked before any is used.

A damaged or hostile header must give one line (`damaged archive (...)`), never a traceback,
a hang or an allocation the archive's bytes do not back. `check_header` returns the normalised
entry names, so that `d/x`, `d//x` and `d/./x` are seen as the one name they are.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import PurePosixPath

import numpy as np

from .array_entries import COLOUR_CHANNELS, has_alpha, model_stack_shape, plain_member
from .entries import KINDS
from .name_order import FileAndFolder, RepeatedName, SortedNames
from .table import CHUNK, FALLBACK_CODES, MAX_ENTRIES, ROW_FIELDS, Recent, Table, carries_crc32, has_alpha_blob

MAX_ITEMS = 1 << 24  # images in the model stream (models.api.MAX_IMAGES)
MAX_FILE_SIZE = 1 << 40  # bytes of one stored file once decompressed
# Of one image entry: Pillow's decompression-bomb limit (twice its warning's), past which it
# reads no image file, so no image bbzip keeps is larger.
MAX_PIXELS = 178_956_970
MAX_NAME = 4096
# How each kind of entry may be kept (cli/entries.py)
STORES_OF_KIND = {name: kind.stores for name, kind in KINDS.items()}
CODECS = {"PNG", "WEBP", "JXL"}
ZIP_METHODS = {0, 8, 12, 14}
IMAGE_FORMATS = {"PNG", "PPM"}  # the formats entries re-encode (file_entries._rewritable)


class HeaderError(ValueError):
    """The header breaks the schema; the message says where."""


def _fail(where: str, what: str):
    raise HeaderError(f"{where}: {what}")


def _int(value, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        _fail(where, f"expected an integer in {low}..{high}")
    return value


def _among(value, allowed) -> bool:
    """value in allowed, for any JSON value (a list or a mapping is never among them)."""
    return isinstance(value, (str, int)) and not isinstance(value, bool) and value in allowed


def _str(value, where: str, longest: int = MAX_NAME) -> str:
    if not isinstance(value, str) or len(value) > longest:
        _fail(where, "expected a text of bounded length")
    return value


def _keys(mapping, where: str, required: set, optional: set = frozenset()) -> dict:
    if not isinstance(mapping, dict):
        _fail(where, "expected a mapping")
    missing, extra = required - set(mapping), set(mapping) - required - optional
    if missing or extra:
        _fail(where, f"fields {sorted(missing)} missing, {sorted(extra)} unexpected")
    return mapping


MAX_NAME_PART = 255  # bytes of one folder or file name: the most Linux and macOS file systems take


def normalised_name(name: str, where: str) -> str:
    """The name as a file system will see it; unsafe names (absolute, '..', backslash, control
    characters) are refused."""
    _str(name, where)
    if name.isascii() and name.isprintable() and "\\" not in name:  # the common case, without PurePosixPath
        parts = name.split("/")
        if all(part not in ("", ".", "..") and len(part) <= MAX_NAME_PART for part in parts):
            return name
    if not name or name.startswith("/") or "\\" in name or any(unicodedata.category(c) == "Cc" for c in name):
        _fail(where, f"unsafe file name {name!r}")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if not parts or ".." in parts:
        _fail(where, f"unsafe file name {name!r}")
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_PART for part in parts):
        _fail(where, f"a part of the name is longer than file systems take ({MAX_NAME_PART} bytes)")
    return "/".join(parts)


def check_header(header, payload_length: int) -> list[str]:
    """Raise HeaderError unless the header fits the schema and the payload; return the entries'
    normalised names."""
    _keys(header, "header", {"entries", "payload_length"}, {"model_stream", "digest"})
    _int(header["payload_length"], "payload_length", payload_length, payload_length)
    items = 0
    if "model_stream" in header:
        stream = _keys(header["model_stream"], "model_stream", {"offset", "length", "items"})
        _span(stream, "model_stream", payload_length)
        items = _int(stream["items"], "model_stream.items", 1, MAX_ITEMS)
    entries = header["entries"]
    if len(entries) > MAX_ENTRIES:
        _fail("entries", f"expected at most {MAX_ENTRIES}")
    if isinstance(entries, Table):
        names = _checked_table_names(entries)
        total_items = _check_table_entries(entries, names, payload_length)
    else:
        names = [normalised_name(entry.get("name") if isinstance(entry, dict) else None, f"entry {index} name")
                 for index, entry in enumerate(entries)]
        _check_names_of_files(names)
        total_items = sum(_checked_entry(entry, index, name, payload_length) for index, (entry, name) in enumerate(zip(entries, names)))
    if total_items != items:
        _fail("entries", f"hold {total_items} model images, the model stream {items}")
    return names


def _check_names_of_files(names: list[str]) -> None:
    """Refuse two entries of one name (named by their places), and a name that is also
    another's folder (found in a sorted copy, as names in sorted order are checked)."""
    _fail_on_a_repeated_name(names)
    _in_order(SortedNames(), sorted(names), 0)


def _checked_table_names(table: Table) -> "TableNames":
    """The table's names, normalised, once each is checked: a chunk at a time, and in sorted
    order (as bbzip writes them) checked as they come, holding nothing per name. Names out of
    order (an archive of an older bbzip, of several inputs) are checked all together."""
    irregular, order = set(), SortedNames()
    for chunk in table.chunks:
        raw = table.chunk_names(chunk)
        names = _plain_names(raw)
        if names is None:
            names = [normalised_name(name, f"entry {chunk * CHUNK + number} name") for number, name in enumerate(raw)]
            irregular.add(chunk)
        if order is not None and not _in_order(order, names, chunk * CHUNK):
            order = None
    names = TableNames(table, irregular)
    if order is None:
        _check_names_of_files(list(names))
    return names


class TableNames(Sequence):
    """The normalised names of a table's entries, derived a chunk at a time when asked for
    (the table keeps the last few chunks'): a chunk whose names are all plain is the table's
    own, others are normalised again."""

    def __init__(self, table: Table, irregular: set[int]):
        self._table, self._irregular, self._normalised = table, irregular, Recent()

    def __len__(self) -> int:
        return len(self._table)

    def _chunk(self, chunk: int) -> list[str]:
        if chunk not in self._irregular:
            return self._table.chunk_names(chunk)
        # (kept: a name asked for at a time, as decompress asks, would normalise its chunk each time)
        return self._normalised.get(chunk, lambda number: [normalised_name(name, "name") for name in self._table.chunk_names(number)])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = index + len(self) if index < 0 else index
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._chunk(index // CHUNK)[index % CHUNK]

    def __iter__(self):
        for chunk in self._table.chunks:
            yield from self._chunk(chunk)


def _in_order(order: SortedNames, names: list[str], first: int) -> bool:
    """order.take(names, first), its clashes as the schema's errors."""
    try:
        return order.take(names, first)
    except RepeatedName as clash:
        _fail(f"entry {clash.place}", f"{clash.name!r} is also entry {clash.place - 1} (two entries, one file)")
    except FileAndFolder as clash:
        _fail("entries", f"{clash.name!r} is both a file and a folder")


def _fail_on_a_repeated_name(names: list[str]) -> None:
    seen = {}
    for index, name in enumerate(names):
        if name in seen:
            _fail(f"entry {index}", f"{name!r} is also entry {seen[name]} (two entries, one file)")
        seen[name] = index


def _checked_entry(entry, index: int, name: str, payload_length: int) -> int:
    try:  # the entry's place is named only in an error: a million entries make it worth it
        return _check_entry(entry, "", payload_length)
    except HeaderError as error:
        raise HeaderError(f"entry {index} ({name!r}){error}") from None


def _plain_names(names: list[str]) -> list[str] | None:
    """The names, if every one is plain (its own normalised form: normalised_name's common case),
    found with a few passes in C over all of them; else None. Plain: printable ASCII without a
    backslash, at most MAX_NAME long, no part empty, "." or "..", nor longer than MAX_NAME_PART.
    (A regular expression tried at every character took minutes over a forged table's names.)"""
    joined = "\n".join(names)
    if joined.count("\n") != len(names) - 1:  # a name with a newline in it is not plain
        return None
    slashed = joined.replace("\n", "/")
    parts = slashed.split("/")
    if (slashed.isascii() and slashed.isprintable() and "\\" not in slashed and max(map(len, names), default=0) <= MAX_NAME
            and max(map(len, parts)) <= MAX_NAME_PART and {"", ".", ".."}.isdisjoint(parts)):
        return names
    return None


# The fields of a table's row (cli/table.py: ROW_FIELDS) that only range checks concern; an
# entry without extras is otherwise decided by the rest of its row and its name.
_VALUE_FIELDS = ("mtime_ns", "crc32", "size", "first_blob")


def _check_table_entries(table: Table, names, payload_length: int) -> int:
    """check_header's per-entry part for a decoded table; returns the model images its entries
    hold. An entry with extras (an array, an .npz, a link) is checked on its own; of the others,
    one whose row is the previous entry's but for its values (times, crc32s, sizes, blob places)
    passes as that one did (a folder of a million alike files is a few runs of alike rows), with
    every value's range checked for all entries at once (the blobs' places were, by the
    table). Whatever fails is then checked on its own, for the same message. A chunk of the
    table at a time."""
    column = {name: number for number, name in enumerate(ROW_FIELDS)}
    alike = [column[name] for name in ROW_FIELDS if name not in _VALUE_FIELDS]
    items, last = 0, None
    for chunk in table.chunks:
        rows, _ = table.chunk_rows(chunk)
        before = rows[:-1] if last is None else np.concatenate([last[None], rows[:-1]])
        to_check = table.chunk_has_extras(chunk)
        if last is None:
            to_check[0] = True
        after = to_check[1:] if last is None else to_check
        after |= (rows[len(rows) - len(before):, alike] != before[:, alike]).any(axis=1)
        for name in ("crc32", "size"):  # whether it has one (-1: none) is part of its row
            after |= (rows[len(rows) - len(before):, column[name]] >= 0) != (before[:, column[name]] >= 0)
        to_check |= rows[:, column["crc32"]] > (1 << 32) - 1
        to_check |= rows[:, column["size"]] > MAX_FILE_SIZE
        first = chunk * CHUNK
        for number in np.flatnonzero(to_check).tolist():
            _checked_entry(table[first + number], first + number, names[first + number], payload_length)
        items += int(rows[:, column["items"]].sum())
        last = rows[-1]
    return items


def _span(span, where: str, payload_length: int) -> None:
    offset = _int(span["offset"], f"{where}.offset", 0, payload_length)
    _int(span["length"], f"{where}.length", 0, payload_length - offset)


_REQUIRED = {name: frozenset({"name", "kind", "items", "blobs", "format", "store"}) | kind.required
             for name, kind in KINDS.items()}  # every entry's fields and its kind's own


def _check_entry(entry, where: str, payload_length: int) -> int:
    """The entry's own fields by kind; returns how many model images it holds."""
    kind = entry.get("kind") if isinstance(entry, dict) else None
    if not _among(kind, STORES_OF_KIND):
        _fail(where, f"unknown kind {kind!r}")
    _keys(entry, where, _REQUIRED[kind], KINDS[kind].optional)
    if carries_crc32(entry):
        _int(entry.get("crc32"), f"{where}.crc32", 0, (1 << 32) - 1)
    elif "crc32" in entry:
        _fail(f"{where}.crc32", "only classic images, transcoded JPEGs and alpha planes have one")
    _str(entry["format"], f"{where}.format", 16)
    if "permissions" in entry or "mtime_ns" in entry:
        _int(entry.get("permissions"), f"{where}.permissions", 0, 0o777)
        _int(entry.get("mtime_ns"), f"{where}.mtime_ns", -(1 << 63), (1 << 63) - 1)  # before 1970 too, as tar keeps it
    if "scale" in entry and not _among(entry["scale"], (1, 255)):
        _fail(f"{where}.scale", "expected 1 or 255")
    blobs = entry["blobs"]
    if not isinstance(blobs, list) or len(blobs) > MAX_ENTRIES:
        _fail(f"{where}.blobs", "expected a list")
    for number, blob in enumerate(blobs):
        _span(_keys(blob, f"{where}.blobs[{number}]", {"offset", "length"}), f"{where}.blobs[{number}]", payload_length)
    items = _int(entry["items"], f"{where}.items", 0, MAX_ITEMS)
    store = entry["store"]
    if not _among(store, STORES_OF_KIND[kind]):
        _fail(f"{where}.store", f"{store!r} is not how a {kind} entry is kept")
    expected_blobs = {"link": 0, "stored": 1, "transcoded": 1, "classic": 1, "model": 0}.get(store)
    classic_images, classic_span = _fallback_images(entry["fallback"], f"{where}.fallback") if "fallback" in entry else (0, 0)
    if kind == "link":
        _str(entry["target"], f"{where}.target")
    if kind == "stored":
        _int(entry["size"], f"{where}.size", 0, MAX_FILE_SIZE)
    if store == "transcoded":
        if entry["format"] != "JPEG" or not {"mode", "width", "height"} <= set(entry):
            _fail(where, "a transcoded JPEG without its size")
        width = _int(entry["width"], f"{where}.width", 1, MAX_PIXELS)
        _int(entry["height"], f"{where}.height", 1, MAX_PIXELS // width)
    if kind == "image":
        _str(entry["mode"], f"{where}.mode", 16)
        width = _int(entry["width"], f"{where}.width", 1, MAX_PIXELS)
        height = _int(entry["height"], f"{where}.height", 1, MAX_PIXELS // width)
        if (store == "classic" or has_alpha_blob(entry)) and not _among(entry.get("codec"), CODECS):
            _fail(f"{where}.codec", "expected PNG, WEBP or JXL")
        if has_alpha_blob(entry):
            expected_blobs = 1
        # An image of a model of fixed size is one item; of a model of any size, its tiles (at
        # least one, at most one a pixel: the model stream's tile size says how many exactly).
        if store == "model" and (not 1 <= items <= width * height or entry["format"] not in IMAGE_FORMATS
                                 or entry["mode"] not in ("L", "1", "RGB", "RGBA", "LA")):
            _fail(where, "not a model image")
        if not _among(entry["format"], IMAGE_FORMATS):
            _fail(f"{where}.format", "not a format bbzip re-encodes")
    if kind == "array":
        stack = _stack(entry, f"{where}.shape")
        if entry["format"] != "NPY":
            _fail(where, "not an .npy file")
        if not isinstance(entry.get("fortran_order", False), bool):
            _fail(f"{where}.fortran_order", "expected true or false")
        _model_items(items, stack, classic_images, classic_span, where)
        expected_blobs = classic_images + has_alpha(entry)  # an RGBA stack's alpha planes: its first blob
    if kind == "npz":
        own_blobs, stack = _check_members(entry, where)
        _model_items(items, stack, classic_images, classic_span, where)
        expected_blobs = own_blobs + classic_images
    if kind in ("link", "stored") and items:
        _fail(where, "holds no model images")
    if expected_blobs is not None and len(blobs) != expected_blobs:
        _fail(f"{where}.blobs", f"expected {expected_blobs}")
    return items


def _fallback_images(fallback, where: str) -> tuple[int, int]:
    """(how many classic images an array keeps beside its model images, the positions their runs
    span): runs [gap, length, ...] of positions (the gaps are model images), one codec letter
    per image, a crc32 over their pixels. That they lie within the array is _model_items's
    check."""
    _keys(fallback, where, {"runs", "codecs", "crc32"})
    runs, codecs = fallback["runs"], fallback["codecs"]
    if not isinstance(runs, list) or not runs or len(runs) % 2 or len(runs) > 2 * MAX_ITEMS:
        _fail(f"{where}.runs", "expected [gap, length, ...]")
    for number, value in enumerate(runs):
        _int(value, f"{where}.runs[{number}]", number % 2, MAX_ITEMS)
    if not isinstance(codecs, str) or sum(runs[1::2]) != len(codecs) or set(codecs) - set(FALLBACK_CODES.values()):
        _fail(f"{where}.codecs", "expected one codec letter per classic image")
    _int(fallback["crc32"], f"{where}.crc32", 0, (1 << 32) - 1)
    return len(codecs), sum(runs)


def _stack(fields, where: str) -> tuple[int, ...]:
    """The image stack (images, height, width[, 3 or 4]) of an array's fields (an entry's or an
    .npz member's): its shape [images, height, width] or [images, height, width, channels], or
    with "single" one image's [height, width] or [height, width, channels]; 3 channels (RGB) or
    4 (RGBA, whose alpha planes are a blob of their own)."""
    single = fields.get("single", False)
    if single is not True and "single" in fields:
        _fail(where, "single: expected true")
    shape = fields["shape"]
    if not isinstance(shape, list) or len(shape) + single not in (3, 4):
        _fail(where, "expected [images, height, width] or [images, height, width, channels], or one image's "
                     "[height, width[, channels]]")
    stack = [1, *shape] if single else shape
    _int(stack[0], f"{where}[0]", 1, MAX_ITEMS)
    width = _int(stack[2], f"{where} width", 1, MAX_PIXELS)
    _int(stack[1], f"{where} height", 1, MAX_PIXELS // width)
    if len(stack) == 4 and stack[3] not in COLOUR_CHANNELS:
        _fail(where, "expected 3 or 4 channels")
    return tuple(stack)


def _model_items(items: int, stack: tuple[int, ...], classic_images: int, classic_span: int, where: str) -> None:
    """An array's model items against its images: each image not kept classic is one item (a
    model of fixed size) or its tiles (a model of any size: at least one, at most one a pixel;
    the model stream's tile size says how many exactly, cli/coding.py)."""
    images = stack[0] - classic_images
    if classic_span > stack[0]:
        _fail(f"{where}.fallback", "beyond the array")
    if images < 0 or not images <= items <= images * stack[1] * stack[2]:
        _fail(where, "shape does not match its images")


def _check_members(entry, where: str) -> tuple[int, tuple[int, ...]]:
    """(its blobs beside its classic images: one each stored member and RGBA image member,
    the image stack its model members make: their images, of one shape)."""
    if not isinstance(entry["compressed"], bool) or entry["format"] != "NPZ":
        _fail(where, "bad npz fields")
    members = entry["members"]
    if not isinstance(members, list) or len(members) > MAX_ENTRIES:
        _fail(f"{where}.members", "expected a list")
    fields = {"member", "store", "date_time", "compress_type", "external_attr", "create_system"}
    images, image_shape, own_blobs, names = 0, None, 0, set()
    for number, member in enumerate(members):
        place = f"{where}.members[{number}]"
        store = member.get("store") if isinstance(member, dict) else None
        _keys(member, place, fields | ({"shape"} if store == "model" else {"size"}), {"fortran_order", "zip64", "single"})
        if not isinstance(member.get("zip64", False), bool) or not isinstance(member.get("fortran_order", False), bool):
            _fail(place, "expected true or false")
        name = _str(member["member"], f"{place}.member")
        _int(member["external_attr"], f"{place}.external_attr", 0, (1 << 32) - 1)
        if name in names or not plain_member(name, member["external_attr"]):
            _fail(place, f"member {name!r} repeated, or not a plain file with a plain name")
        names.add(name)
        date_time = member["date_time"]
        if not isinstance(date_time, list) or len(date_time) != 6:
            _fail(f"{place}.date_time", "expected 6 numbers")
        for part, (low, high) in zip(date_time, [(1980, 2107), (1, 12), (1, 31), (0, 23), (0, 59), (0, 59)]):
            _int(part, f"{place}.date_time", low, high)
        if not _among(member["compress_type"], ZIP_METHODS):
            _fail(f"{place}.compress_type", "unknown zip method")
        _int(member["create_system"], f"{place}.create_system", 0, 255)
        if store == "model":
            _stack(member, f"{place}.shape")
            stack = model_stack_shape(member)  # RGBA images' colour: their alpha planes are a blob
            if image_shape not in (None, stack[1:]):
                _fail(place, "an image member of another shape than the first")
            images, image_shape = images + stack[0], stack[1:]
            own_blobs += has_alpha(member)
        elif store == "stored":
            _int(member["size"], f"{place}.size", 0, MAX_FILE_SIZE)
            own_blobs += 1
        else:
            _fail(f"{place}.store", f"unknown store {store!r}")
    return own_blobs, (images, *(image_shape or (1, 1)))
