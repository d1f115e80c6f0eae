"""The columnar entry table (cli/table.py) and the header schema's checks across entries."""
import tracemalloc

import pytest

from bbzip.cli.header_schema import HeaderError, check_header
from bbzip.cli.table import Table, TableError, decode_table, encode_table


def _entry(name, **fields):
    entry = {"name": name, "kind": "stored", "store": "stored", "format": "BYTES", "items": 0,
             "permissions": 0o644, "mtime_ns": 1_700_000_000 * 10**9, "blobs": [{"offset": 0, "length": 60}]}
    entry.update(fields)
    if entry["kind"] == "stored":
        entry.setdefault("size", 3)
    return entry


def _header(entries):
    offset = 0
    for entry in entries:
        for blob in entry["blobs"]:
            blob["offset"] = offset
            offset += blob["length"]
    return {"entries": entries, "payload_length": offset}


def _round_trip(header) -> Table:
    table, raw_length = encode_table(header)
    return decode_table(table, raw_length)


def test_every_kind_of_entry_comes_back_field_for_field():
    entries = [
        _entry("a/notes.txt"),
        _entry("a/x.png", kind="image", store="classic", format="PNG", mode="RGBA", width=50, height=40, codec="WEBP",
               crc32=123456789),
        _entry("a/y.png", kind="image", store="model", format="PNG", mode="L", width=28, height=28, items=1, blobs=[]),
        _entry("b/stack.npy", kind="array", store="model", format="NPY", items=5, shape=[5, 28, 28],
               fortran_order=True, scale=255, blobs=[]),
        _entry("b/link", kind="link", store="link", format="LINK", target="../a/x.png", blobs=[]),
        _entry("b/set.npz", kind="npz", store="members", format="NPZ", items=2, compressed=True, blobs=[{"length": 70}],
               members=[{"member": "x.npy", "store": "model", "shape": [2, 28, 28]}, {"member": "l.npy", "store": "stored",
                                                                                        "size": 9}]),
    ]
    del entries[4]["permissions"], entries[4]["mtime_ns"]  # links carry no attributes
    entries[1]["mtime_ns"] += 123  # times need not be in order
    header = _header(entries)
    header["model_stream"] = {"offset": 0, "length": 0, "items": 8}
    table = _round_trip(header)
    assert len(table) == len(entries)
    for original, decoded in zip(entries, table):
        assert decoded == original


def test_a_folder_of_files_costs_a_fraction_of_a_byte_a_file():
    """Names front-coded and times delta-coded before LZMA: 10,000 entries in a few hundred bytes."""
    entries = [_entry(f"digits/{i:05d}.png", kind="image", store="model", format="PNG", mode="1", width=28, height=28,
                      items=1, blobs=[]) for i in range(10000)]
    table, _ = encode_table(_header(entries))
    assert len(table) < 0.1 * 10000


@pytest.mark.parametrize("names", [["d", "d/x"], ["d/x", "d.txt", "d-2", "d"], ["a/b/c", "a/b"]])
def test_a_name_that_is_also_a_folder_is_refused(names):
    with pytest.raises(HeaderError, match="both a file and a folder"):
        check_header(_header([_entry(n) for n in names]), 60 * len(names))


def test_deep_names_are_checked_without_listing_their_folders():
    """300 names 1,000 folders deep: format 3's check built every folder of every name (300,000
    strings of about 1 KB, 300 MB here, gigabytes for a table of such names); sorted neighbours
    need no more than the names."""
    deep = "/".join(["f"] * 1000)
    names = [f"{i}/{deep}/x" for i in range(300)]
    header = _header([_entry(n) for n in names])
    tracemalloc.start()
    try:
        assert check_header(header, 60 * len(names)) == names
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_counts_the_columns_do_not_back_are_refused():
    table, raw_length = encode_table(_header([_entry("x")]))
    with pytest.raises(TableError):
        decode_table(table, raw_length + 1)
    with pytest.raises(TableError):
        decode_table(table[:-3], raw_length)


@pytest.mark.parametrize("field, value", [("permissions", 0o1777), ("width", 0), ("codec", ""),
                                          ("crc32", 1 << 32), ("height", 10**9), ("mode", ""), ("format", "BYTES")])
def test_an_entry_unlike_the_alike_ones_around_it_is_still_checked(field, value):
    """The schema checks a table's entries once per run of alike rows, and every value's range
    for all of them: one forged field in the middle of a folder of alike images is caught and
    named, whether it makes its row unlike its neighbours' or only its value out of range."""
    def image(number, **fields):
        entry = _entry(f"digits/{number:03d}.png", kind="image", store="classic", format="PNG", mode="L", width=28,
                       height=28, codec="PNG", crc32=number, blobs=[{"length": 60}])
        entry.update(fields)
        return entry

    header = _header([image(number, **({field: value} if number == 50 else {})) for number in range(100)])
    table = _round_trip(header)
    assert [name for name in check_header({**header, "entries": _round_trip(_header([image(n) for n in range(100)]))},
                                          header["payload_length"])][50] == "digits/050.png"
    with pytest.raises(HeaderError, match="entry 50 "):
        check_header({**header, "entries": table}, header["payload_length"])


def test_a_small_table_is_deflated_with_the_dictionary_and_a_large_one_with_lzma():
    """Format 7: a one-image archive's table is mostly its layout JSON, which the preset
    dictionary codes in a fraction of what LZMA needs; a table of thousands of entries stays LZMA."""
    import lzma

    from bbzip.cli.table import _FILTERS, LZMA_TABLE, PRIMED_DEFLATE_TABLE, decompress_table

    one = _header([_entry("kde_kite.png", kind="image", store="model", format="PNG", mode="RGB", width=512, height=320,
                          items=12, blobs=[])])
    one["model_stream"], one["digest"] = {"offset": 0, "length": 131000, "items": 12}, "3c49a128" * 8
    stored, raw_length = encode_table(one)
    raw = decompress_table(stored, raw_length)
    assert stored[0] == PRIMED_DEFLATE_TABLE
    assert len(stored) < 0.5 * len(lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_FILTERS))
    assert decode_table(stored, raw_length)[0]["name"] == "kde_kite.png"
    many = _header([_entry(f"digits/{i:05d}.png") for i in range(5000)])
    stored, raw_length = encode_table(many)
    assert stored[0] == LZMA_TABLE and len(decode_table(stored, raw_length)) == 5000


def test_an_unknown_table_compression_or_bytes_past_the_deflate_stream_are_refused():
    table, raw_length = encode_table(_header([_entry("x")]))
    with pytest.raises(TableError, match="unknown table compression"):
        decode_table(bytes([7]) + table[1:], raw_length)
    with pytest.raises(TableError):
        decode_table(table + b"\0", raw_length)


def test_the_table_dictionary_is_the_one_format_7_archives_were_written_with():
    """The dictionary is part of the format: a changed byte and every archive's table fails."""
    import hashlib

    from bbzip.cli.table_dictionary import TABLE_DICTIONARY

    assert hashlib.sha256(TABLE_DICTIONARY).hexdigest() == "5933ee4279dac310559b78a03460f8b09e0d5c9c83661a08af1ffe2ce2535578"


def test_a_table_is_compressed_in_memory_its_size_not_lzma_s_dictionary_s():
    """LZMA's encoder with the decoder's 16 MiB dictionary took about 190 MB to compress a table
    of any size; the encoder's dictionary is no larger than the table now. The entries may be
    any iterable gone over twice (compress makes their dicts as they are asked for)."""
    entries = [_entry(f"digits/{i:05d}.png", kind="image", store="model", format="PNG", mode="L", width=28, height=28,
                      items=1, blobs=[]) for i in range(2000)]
    header = _header(entries)

    class MadeAgain:  # each dict made anew at each pass, as coding.EntryHeaders makes them
        def __iter__(self):
            return (dict(entry) for entry in entries)

    tracemalloc.start()
    try:
        table, raw_length = encode_table({**header, "entries": MadeAgain()})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    assert (table, raw_length) == encode_table(header)
    assert [entry["name"] for entry in decode_table(table, raw_length)] == [entry["name"] for entry in entries]


def test_times_anywhere_in_their_range_come_back_in_any_order():
    """Times are delta-coded in 64 bits: from a file of 1678 to one of 2262 the step overflows,
    so it is taken modulo 2^64, as the reader's running sum adds it up."""
    times = [-(1 << 63), (1 << 63) - 1, 0, -1, (1 << 63) - 1, -(1 << 63) + 1]
    entries = [_entry(f"t/{number}", mtime_ns=mtime) for number, mtime in enumerate(times)]
    assert [entry["mtime_ns"] for entry in _round_trip(_header(entries))] == times


def test_every_field_comes_back_across_the_chunks_a_table_is_read_in():
    """A table derives its rows and names a chunk at a time (cli/table.py CHUNK) from running
    sums at each chunk's start: times, crc32s, sizes, blob places and front-coded names must come
    back the same in the third chunk as in the first, in any order the entries are read."""
    import random

    from bbzip.cli.table import CHUNK

    generator = random.Random(7)
    entries = []
    for number in range(2 * CHUNK + 500):
        name = f"d{number % 3}/{'x' * generator.randrange(40)}/{number:05d}"
        entries.append(generator.choice([
            lambda: _entry(name, mtime_ns=generator.randrange(-(1 << 63), 1 << 63), size=generator.randrange(1 << 40)),
            lambda: _entry(name, kind="image", store="classic", format="PNG", mode="L", width=9, height=4, codec="PNG",
                           crc32=generator.randrange(1 << 32), blobs=[{"length": 16 + generator.randrange(90)}]),
            lambda: _entry(name, kind="image", store="model", format="PNG", mode="L", width=28, height=28, items=1,
                           blobs=[]),
            lambda: _entry(name, kind="link", store="link", format="LINK", target=f"../{number}", blobs=[]),
        ])())
    header = _header(entries)
    table = _round_trip(header)
    assert list(table) == entries
    for index in generator.sample(range(len(entries)), 200) + [-1, 0, CHUNK - 1, CHUNK, 2 * CHUNK]:
        assert table[index] == entries[index]


def test_names_in_order_are_checked_across_chunks_as_they_come():
    """bbzip writes names in sorted order, which the schema checks as they come (holding
    nothing a name): a name repeated, or a file that is also a later name's folder, is still
    found where sorted order puts other names between them or a chunk's end."""
    from bbzip.cli.table import CHUNK

    names = [f"a/{number:05d}" for number in range(CHUNK + 10)]
    check_header(_header([_entry(n) for n in names]), 60 * len(names))
    repeated = sorted(names + [names[CHUNK]])
    with pytest.raises(HeaderError, match=f"entry {CHUNK + 1}: 'a/0{CHUNK}' is also entry {CHUNK} "):
        check_header({"entries": _round_trip(_header([_entry(n) for n in repeated])), "payload_length": 60 * len(repeated)},
                     60 * len(repeated))
    for between in (["d", "d-2", "d.txt", "d/x"], ["a/x", "a/x-1", "a/x.png", "a/x/y"]):
        folder = sorted(names + between)
        assert folder.index(between[-1]) - folder.index(between[0]) > 1
        with pytest.raises(HeaderError, match=f"'{between[0]}' is both a file and a folder"):
            check_header({"entries": _round_trip(_header([_entry(n) for n in folder])), "payload_length": 60 * len(folder)},
                         60 * len(folder))


def test_a_read_table_holds_a_few_bytes_an_entry():
    """A folder's table once cost about 280 bytes an entry to read and hold (a row of 15
    int64s, a str a name, indices): decompress and compress's check held it whole. Only the
    table's bytes and a few chunks' rows and names are held now (the difference between two
    sizes: what an entry costs, without the chunks kept)."""
    from bbzip.cli.archive import archive_head, read_archive

    held = {}
    for count in (20000, 60000):
        entries = [_entry(f"photos/class_{number // 1000:03d}/image_{number:06d}.png", kind="image", store="model",
                          format="PNG", mode="L", width=28, height=28, items=1, blobs=[]) for number in range(count)]
        head = archive_head({"entries": entries, "payload_length": 100, "digest": "0" * 64,
                             "model_stream": {"offset": 0, "length": 100, "items": count}})
        del entries
        tracemalloc.start()
        try:
            archive = read_archive(head + bytes(100))
            assert sum(1 for entry in archive.header["entries"] if entry["items"]) == count
            assert archive.names[count - 1] == f"photos/class_{(count - 1) // 1000:03d}/image_{count - 1:06d}.png"
            held[count] = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        del archive
    assert (held[60000] - held[20000]) / 40000 < 32


def test_names_that_front_coding_makes_gigabytes_of_are_refused(monkeypatch):
    """Front coding keeps a name that shares all but its last byte with the one before in one
    byte: a table of a few hundred bytes held 100,000 names of 4 KB, which took minutes and
    gigabytes to read (the names were all decoded, then sorted whole). The names' decoded total
    is bounded (MAX_NAMES_TOTAL, here made smaller so as to forge a table past it quickly), and
    compress refuses to write more."""
    from bbzip.cli import table as table_module
    from bbzip.cli.archive import ArchiveError, archive_head, read_archive

    monkeypatch.setattr(table_module, "MAX_NAMES_TOTAL", 4 << 20)
    deep = "/".join(["d" * 200] * 20)
    links = [{"name": f"{deep}/{number:06d}", "kind": "link", "store": "link", "items": 0, "format": "LINK", "blobs": [],
              "target": "x"} for number in range(1100)]
    with pytest.raises(TableError, match="names add up to more than 4 MiB"):
        archive_head({"entries": links, "payload_length": 0, "digest": "0" * 64})
    monkeypatch.setattr(table_module, "MAX_NAMES_TOTAL", 1 << 40)
    forged = archive_head({"entries": links, "payload_length": 0, "digest": "0" * 64})
    assert len(forged) < 2000
    monkeypatch.setattr(table_module, "MAX_NAMES_TOTAL", 4 << 20)
    with pytest.raises(ArchiveError, match="names add up to more than 4 MiB"):
        read_archive(forged)
    assert len(read_archive(archive_head({"entries": links[:1000], "payload_length": 0, "digest": "0" * 64})).names) == 1000


def test_writing_a_table_holds_a_few_bytes_an_entry():
    """Writing the table of a large folder held 8 bytes a value of every column until the end,
    and LZMA's encoder a dictionary as large as the table (about ten times that in memory):
    about 500 bytes an entry. Columns are narrowed a chunk at a time, the encoder's dictionary
    is at most 1 MiB (the difference between two sizes, both past it), and the table's pieces
    go to the encoder as they are, not joined first (checked to fail joined: 58 bytes an entry)."""
    def made(count):  # each dict made as it is asked for, as coding.EntryHeaders makes them
        return (_entry(f"photos/class_{n // 1000:03d}/image_{n:06d}.png", kind="image", store="model", format="PNG",
                       mode="L", width=28, height=28, items=1, blobs=[], mtime_ns=1_700_000_000 * 10**9 + n)
                for n in range(count))

    class Entries:
        def __init__(self, count):
            self.count = count

        def __iter__(self):
            return made(self.count)

    peaks = {}
    for count in (40000, 120000):
        tracemalloc.start()
        try:
            table, raw_length = encode_table({"entries": Entries(count), "payload_length": 0})
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert [entry["name"] for entry in decode_table(table, raw_length)][-2:] == \
        ["photos/class_119/image_119998.png", "photos/class_119/image_119999.png"]
    assert (peaks[120000] - peaks[40000]) / 80000 < 40


def test_names_that_are_not_plain_are_normalised_once_a_chunk(monkeypatch):
    """A chunk of names that are not plain (here not ASCII) is normalised again when its names
    are asked for, and kept: asked for one at a time, as decompress asks, each name once
    normalised its whole chunk (4,096 names a name)."""
    from bbzip.cli import header_schema
    from bbzip.cli.table import CHUNK

    names = [f"café/{number:05d}.png" for number in range(CHUNK + 100)]
    header = _header([_entry(n) for n in names])
    table = _round_trip(header)
    checked = check_header({**header, "entries": table}, header["payload_length"])
    calls = []
    original = header_schema.normalised_name
    monkeypatch.setattr(header_schema, "normalised_name", lambda name, where: calls.append(name) or original(name, where))
    assert [checked[index] for index in range(len(names))] == names
    assert len(calls) <= len(names)
