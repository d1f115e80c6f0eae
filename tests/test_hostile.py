"""Hostile archives: headers rewritten with their checksums recomputed (issue 9, items 11-16)."""
import copy
import lzma
import struct
import tempfile
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bbzip.cli.archive import FORMAT_VERSION, MAGIC, read_archive, write_archive
from bbzip.cli.main import cli


@pytest.fixture(scope="module")
def varied_archive(tmp_path_factory, grey_test_images, tiny_models):
    """An archive with every kind of entry: model images, a classic image, stored bytes, an npz."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("varied") / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(grey_test_images[0]).save(folder / "digit.png")
    Image.fromarray(np.tile(grey_test_images[1], (2, 2))).save(folder / "sub" / "big.png")
    (folder / "notes.txt").write_bytes(b"kept as bytes")
    np.savez(folder / "set.npz", x=grey_test_images[2:5], labels=np.arange(3))
    archive = folder.parent / "a.bb"
    result = CliRunner().invoke(cli, ["-q", "compress", str(folder), "-o", str(archive), "--model", str(tiny_models["logistic"]),
                                      "--no-fallback"])
    assert result.exit_code == 0, result.output
    return archive.read_bytes()


@pytest.fixture(scope="module")
def fallback_archive(tmp_path_factory, grey_test_images, tiny_models):
    """An archive whose images the (untrained) model loses to classic codecs: single images as
    PNG, WebP or JPEG XL, an array's and an npz's images as classic blobs, a transcoded JPEG."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("fallback") / "in"
    folder.mkdir()
    for number in range(3):
        Image.fromarray(grey_test_images[number]).save(folder / f"digit{number}.png")
    np.save(folder / "stack.npy", grey_test_images[3:7])
    np.savez(folder / "set.npz", x=grey_test_images[7:9], labels=np.arange(2))
    noise = np.random.default_rng(0).normal(0, 8, (112, 140, 3))
    photo = np.clip(noise + np.tile(grey_test_images[9], (4, 5))[..., None], 0, 255)
    Image.fromarray(photo.astype(np.uint8)).save(folder / "photo.jpg", quality=90)  # transcodes smaller than xz
    archive = folder.parent / "a.bb"
    result = CliRunner().invoke(cli, ["-q", "compress", str(folder), "-o", str(archive), "--model", str(tiny_models["logistic"])])
    assert result.exit_code == 0, result.output
    stores = {e["store"] for e in read_archive(archive.read_bytes()).header["entries"]}
    assert stores == {"classic", "model", "members", "transcoded"}  # model: the array, all of whose images left
    return archive.read_bytes()


@pytest.fixture(params=["model stream", "classic fallback"])
def any_archive(request, varied_archive, fallback_archive):
    return varied_archive if request.param == "model stream" else fallback_archive


def _as_dicts(data: bytes) -> tuple[dict, bytes]:
    """The header of an archive as plain dicts and lists (write_archive's input), and its payload."""
    archive = read_archive(data)
    header = {key: value for key, value in archive.header.items() if key != "entries"}
    header["entries"] = [dict(entry) for entry in archive.header["entries"]]
    return copy.deepcopy(header), archive.payload.read()


def _with_blob(header: dict, payload: bytes, name: str, blob: bytes) -> tuple[dict, bytes]:
    """The payload with entry `name`'s one blob replaced (blobs lie in entry order after the stream)."""
    parts = [payload[: header.get("model_stream", {}).get("length", 0)]]
    for entry in header["entries"]:
        for number, span in enumerate(entry["blobs"]):
            content = blob if entry["name"] == name else payload[span["offset"] : span["offset"] + span["length"]]
            entry["blobs"][number] = {"offset": sum(map(len, parts)), "length": len(content)}
            parts.append(content)
    payload = b"".join(parts)
    header["payload_length"] = len(payload)
    return header, payload


MEMORY_BOUND = 160 << 20  # bytes: an xz decoder's 96 MiB at most, and the small archive itself


def _outcome(tmp_path, data: bytes, model, trace_memory=True) -> tuple[int, str]:
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis runs many examples in one tmp_path
    bad = tmp_path / "bad.bb"
    bad.write_bytes(data)
    out = tmp_path / "never"
    tracing = tracemalloc.is_tracing() or not trace_memory  # tracing triples the time: header cases only
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        results = [CliRunner().invoke(cli, [command, str(bad), *extra]) for command, extra in
                   (("list", []), ("test", ["--model", str(model)]), ("decompress", ["-o", str(out), "--model", str(model)]))]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not tracing:
            tracemalloc.stop()
    assert not trace_memory or peak < MEMORY_BOUND, f"{peak >> 20} MiB"
    for result in results:
        assert isinstance(result.exception, SystemExit) or result.exception is None, result.exception
        assert result.exit_code in (0, 1), result.output
        if result.exit_code == 1:
            assert result.output.startswith("bbzip: ") and len(result.output.strip().splitlines()) == 1, result.output
    if results[2].exit_code == 1:
        assert not out.exists() or not any(out.rglob("*"))
    return results[2].exit_code, results[2].output, out


def _tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("twin", ["in/notes.txt", "in//notes.txt", "in/./notes.txt"])
def test_two_entries_for_one_file_are_refused(tmp_path, varied_archive, tiny_models, twin):
    header, payload = _as_dicts(varied_archive)
    index = next(i for i, e in enumerate(header["entries"]) if e["name"] == "in/digit.png")
    header["entries"][index]["name"] = twin
    header["entries"].sort(key=lambda e: e["name"])  # a name may come anywhere in a forged table
    header, payload = _with_blob(header, payload, "", b"")
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), tiny_models["logistic"])
    assert code == 1 and ("two entries, one file" in output or "also entry" in output)


def test_an_xz_bomb_stops_at_the_declared_size(tmp_path, varied_archive, tiny_models):
    header, payload = _as_dicts(varied_archive)
    bomb = lzma.compress(b"\0" * (256 << 20), preset=9)  # 256 MiB in about 40 KB
    header, payload = _with_blob(header, payload, "in/notes.txt", bomb)
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), tiny_models["logistic"])  # bounded memory
    assert code == 1 and "damaged" in output


def _paths(value, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_headers_give_one_line_or_a_correct_archive(tmp_path, any_archive, tiny_models, data):
    """Any one field of an entry replaced, deleted, or a field added, written as a table with
    its checksum recomputed (where the table can hold it at all): every command exits 0 or 1
    with one line, never a traceback, never a partial output, in bounded memory. A few examples
    here (each decodes the archive three times, under tracemalloc); many in the slow suite."""
    _check_a_mutated_header(tmp_path, any_archive, tiny_models, data)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_many_mutated_headers_give_one_line_or_a_correct_archive(tmp_path, any_archive, tiny_models, data):
    _check_a_mutated_header(tmp_path, any_archive, tiny_models, data)


def _check_a_mutated_header(tmp_path, any_archive, tiny_models, data) -> None:
    header, payload = _as_dicts(any_archive)
    paths = [p for p, _ in _paths(header) if p]
    path = data.draw(st.sampled_from(paths))
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = data.draw(JSON)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=6))] = data.draw(JSON)
    else:
        parent.append(data.draw(JSON))
    try:
        forged = write_archive(header, payload)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError):
        assume(False)  # a header no table can express: nothing to decode
    _outcome(tmp_path, forged, tiny_models["logistic"])


def _raw_table(data: bytes) -> tuple[bytes, bytes]:
    """(decompressed table, payload) of an archive."""
    from bbzip.cli.table import decompress_table

    raw_length, length = struct.unpack_from("<II", data, len(MAGIC) + 2)
    start = len(MAGIC) + 10
    return decompress_table(data[start : start + length], raw_length), data[start + length + 4 :]


def _with_raw_table(raw: bytes, payload: bytes) -> bytes:
    from bbzip.cli.table import compress_table

    table = compress_table([raw])
    return b"".join([MAGIC, struct.pack("<HII", FORMAT_VERSION, len(raw), len(table)), table,
                     struct.pack("<I", zlib.crc32(table)), payload])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_tables_give_one_line_or_a_correct_archive(tmp_path, any_archive, tiny_models, data):
    """Bytes of the decompressed table changed, inserted or cut (layout JSON, columns, names,
    extras), then compressed and sealed again: one line or a correct archive, bounded memory."""
    raw, payload = _raw_table(any_archive)
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "cut", "big"]))
        if action == "flip":
            raw[position] ^= data.draw(st.integers(1, 255))
        elif action == "insert":
            raw[position:position] = bytes([data.draw(st.integers(0, 255))])
        elif action == "cut":
            del raw[position]
        else:  # a count or length made huge
            raw[position : position + 4] = b"\xff\xff\xff\x7f"
    _outcome(tmp_path, _with_raw_table(bytes(raw), payload), tiny_models["logistic"])


def test_a_table_claiming_millions_of_entries_is_refused_without_building_them(tmp_path, varied_archive, tiny_models):
    """The table's own columns must back its entry count: a layout that claims 4 million
    entries over columns of a few dozen fails at once, in bounded memory (0.2: 2 GB from a
    header of [{},{},...])."""
    import json

    raw, payload = _raw_table(varied_archive)
    length = int.from_bytes(raw[:4], "little")
    layout = json.loads(raw[4 : 4 + length])
    layout["entries"] = 4_000_000
    new_layout = json.dumps(layout).encode()
    forged = _with_raw_table(len(new_layout).to_bytes(4, "little") + new_layout + raw[4 + length :], payload)
    code, output, _ = _outcome(tmp_path, forged, tiny_models["logistic"])
    assert code == 1 and "damaged archive" in output


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_payloads_give_one_line_and_never_wrong_files(tmp_path, any_archive, tiny_models, data):
    """Bytes of the payload (model stream, classic and stored blobs) changed; the table intact."""
    raw, payload = _raw_table(any_archive)
    payload = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(payload) - 1))
        payload[position] ^= data.draw(st.integers(1, 255))
    code, _, out = _outcome(tmp_path, _with_raw_table(raw, bytes(payload)), tiny_models["logistic"], trace_memory=False)
    if code == 0:  # possible (a PNG chunk's own crc is not needed to decode it), but only exactly right
        original, _, reference = _outcome(tmp_path, any_archive, tiny_models["logistic"], trace_memory=False)
        assert original == 0 and _tree(out) == _tree(reference)


def test_an_8_bit_entry_given_a_two_valued_scale_is_damage_not_other_pixels(tmp_path, varied_archive, tiny_models):
    """A table forged to give a grey array's entry scale 255: 0.1 wrote 255 x v mod 256 for every
    pixel, with exit 0 and `test` OK. The model's own map from symbols to pixels refuses it."""
    header, payload = _as_dicts(varied_archive)
    entry = next(e for e in header["entries"] if e["name"] == "in/digit.png")
    entry["scale"] = 255
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), tiny_models["logistic"], trace_memory=False)
    assert code == 1 and "in/digit.png" in output and "scale 255" in output


def _with_layout(data: bytes, layout: bytes) -> bytes:
    raw, payload = _raw_table(data)
    old = int.from_bytes(raw[:4], "little")
    return _with_raw_table(len(layout).to_bytes(4, "little") + layout + raw[4 + old :], payload)


def test_a_layout_nested_30000_deep_is_one_line(tmp_path, varied_archive, tiny_models):
    """0.1: RecursionError from the table's JSON reader, a traceback."""
    code, output, _ = _outcome(tmp_path, _with_layout(varied_archive, b"[" * 30000 + b"]" * 30000),
                               tiny_models["logistic"], trace_memory=False)
    assert code == 1 and "layout is not valid" in output


def test_a_negative_kind_is_one_line(tmp_path, varied_archive, tiny_models):
    """0.1 checked only the largest value of an enumerated column: a kind of -1, in a column the
    layout declares signed, raised IndexError."""
    import json

    raw, payload = _raw_table(varied_archive)
    length = int.from_bytes(raw[:4], "little")
    layout = json.loads(raw[4 : 4 + length])
    width, size = layout["columns"]["kind"]
    kinds = np.frombuffer(raw, dtype={"u1": np.uint8}[width], count=size, offset=4 + length).astype(np.int64)
    kinds[0] = -1
    layout["columns"]["kind"] = ["i8", 8 * len(kinds)]
    new_layout = json.dumps(layout).encode()
    rebuilt = len(new_layout).to_bytes(4, "little") + new_layout + kinds.tobytes() + raw[4 + length + size :]
    code, output, _ = _outcome(tmp_path, _with_raw_table(rebuilt, payload), tiny_models["logistic"], trace_memory=False)
    assert code == 1 and "column kind has a value out of range" in output


def _with_stream_header(data: bytes, change) -> bytes:
    """The archive with its model stream record's header changed by change(dict), sealed again
    (its crc, the table's stream length and blob offsets)."""

    from bbzip.models.api import MAGIC as STREAM_MAGIC
    from bbzip.models.api import deflate_header, inflate_header

    header, payload = _as_dicts(data)
    stream_length = header["model_stream"]["length"]
    record, rest = payload[:stream_length], payload[stream_length:]
    (length,) = struct.unpack_from("<I", record, len(STREAM_MAGIC))
    start = len(STREAM_MAGIC) + 4
    fields = inflate_header(record[start : start + length])
    change(fields)
    packed = deflate_header(fields)
    new_record = STREAM_MAGIC + struct.pack("<I", len(packed)) + packed + struct.pack("<I", zlib.crc32(packed)) + \
        record[start + length + 4 :]
    shift = len(new_record) - len(record)
    header["model_stream"]["length"] += shift
    for entry in header["entries"]:
        for blob in entry["blobs"]:
            blob["offset"] += shift
    header["payload_length"] += shift
    return write_archive(header, new_record + rest)


@pytest.mark.parametrize("config", [{"nested": [[[1]]]}, "missing height"])
def test_a_stream_header_with_a_bad_model_config_is_one_line(tmp_path, varied_archive, tiny_models, config):
    """0.1: a config nested 900 deep or without a height gave TypeError / KeyError in `list`."""
    def change(fields):
        if config == "missing height":
            del fields["model"]["config"]["height"]
        else:
            fields["model"]["config"].update(config)

    code, output, _ = _outcome(tmp_path, _with_stream_header(varied_archive, change), tiny_models["logistic"],
                               trace_memory=False)
    assert code == 1 and "bad model description" in output


def test_a_name_part_longer_than_file_systems_take_fails_test_as_decompress_would(tmp_path, varied_archive, tiny_models):
    """0.1: `test` said OK for a 300-character name that `decompress` could not write."""
    header, payload = _as_dicts(varied_archive)
    entry = next(e for e in header["entries"] if e["name"] == "in/notes.txt")
    entry["name"] = "in/" + "n" * 300
    data = write_archive(header, payload)
    code, output, _ = _outcome(tmp_path, data, tiny_models["logistic"], trace_memory=False)
    assert code == 1 and "longer than file systems take" in output
    (tmp_path / "a.bb").write_bytes(data)
    tested = CliRunner().invoke(cli, ["test", str(tmp_path / "a.bb"), "--model", str(tiny_models["logistic"])])
    assert tested.exit_code == 1 and "longer than file systems take" in tested.output


def test_bytes_after_a_stored_blob_s_xz_stream_are_damage(tmp_path, varied_archive, tiny_models):
    """0.1 decoded the xz stream and ignored whatever followed it, unchecked."""
    from bbzip.cli.xz import xz

    header, payload = _as_dicts(varied_archive)
    header, payload = _with_blob(header, payload, "in/notes.txt", xz(b"kept as bytes") + b"trailing")
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), tiny_models["logistic"], trace_memory=False)
    assert code == 1 and "bytes after the stored xz stream" in output


def test_a_stream_header_asking_for_1000_k_steps_is_refused(tmp_path, varied_archive, tiny_models):
    """0.1 took K up to 65,535 from a header: 200 images ran past 60 s. K is bounded (64) the same
    for compress and for what an archive may ask."""
    def change(fields):
        fields["coding"]["k_steps"] = 1000

    code, output, _ = _outcome(tmp_path, _with_stream_header(varied_archive, change), tiny_models["logistic"],
                               trace_memory=False)
    assert code == 1 and "k_steps must be 0..64" in output
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), dtype=np.uint8))
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.bb"), "--k-steps", "65"])
    assert result.exit_code == 2 and "--k-steps must be 0..64" in result.output


@pytest.mark.parametrize("forged", ["parent name", "absolute name", "link member", "fortran_order"])
def test_table_fields_that_would_change_the_output_are_refused(tmp_path, fallback_archive, tiny_models, forged):
    """0.2 wrote an .npz member named ../../evil.npy, or with a symbolic link's mode bits, into
    the rebuilt .npz (whoever unzips it gets them), and an array with fortran_order "yes" as an
    .npy that numpy refuses, each with exit 0 and `test` OK."""
    header, payload = _as_dicts(fallback_archive)
    npz = next(e for e in header["entries"] if e["name"] == "in/set.npz")
    member = next(m for m in npz["members"] if m["store"] == "model")
    if forged == "parent name":
        member["member"] = "../../evil.npy"
    elif forged == "absolute name":
        member["member"] = "/tmp/evil.npy"
    elif forged == "link member":
        member["external_attr"] = (0o120777 << 16)
    else:
        next(e for e in header["entries"] if e["name"] == "in/stack.npy")["fortran_order"] = "yes"
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), tiny_models["logistic"], trace_memory=False)
    assert code == 1 and ("not a plain file with a plain name" in output or "expected true or false" in output), output


def test_an_npz_with_a_member_bbzip_would_not_write_back_plainly_is_kept_as_bytes(tmp_path, grey_test_images):
    import zipfile

    source = tmp_path / "odd.npz"
    np.savez(source, x=grey_test_images[:3])
    with zipfile.ZipFile(source, "a") as archive:
        archive.writestr("../up.npy", b"")  # a name that climbs out
    archive = tmp_path / "a.bb"
    result = CliRunner().invoke(cli, ["-q", "compress", str(source), "-o", str(archive)])
    assert result.exit_code == 0, result.output
    assert read_archive(archive.read_bytes()).header["entries"][0]["store"] == "stored"
    assert CliRunner().invoke(cli, ["-q", "decompress", str(archive), "-o", str(tmp_path / "out")]).exit_code == 0
    assert (tmp_path / "out" / "odd.npz").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("forgery", ["blobs swapped", "names swapped"])
def test_parts_each_intact_but_re_routed_fail_the_archive_s_digest(tmp_path, fallback_archive, tiny_models, forgery):
    """Two classic images' blobs swapped with their crc32s (or the two entries' names swapped):
    every part passes its own check. 0.2 decompressed each image into the other's file, exit 0,
    `test` OK; the archive's digest (format 6) binds every entry's name to what it gives back."""
    header, payload = _as_dicts(fallback_archive)
    first, second = (next(e for e in header["entries"] if e["name"] == f"in/digit{n}.png") for n in (0, 1))
    if forgery == "blobs swapped":
        contents = [payload[e["blobs"][0]["offset"] :][: e["blobs"][0]["length"]] for e in (first, second)]
        for key in ("crc32", "codec", "mode", "width", "height"):
            first[key], second[key] = second[key], first[key]
        header, payload = _with_blob(header, payload, first["name"], contents[1])
        header, payload = _with_blob(header, payload, second["name"], contents[0])
    else:
        first["name"], second["name"] = second["name"], first["name"]
    forged = tmp_path / "forged.bb"
    forged.write_bytes(write_archive(header, payload))
    for command in (["test"], ["decompress", "-o", str(tmp_path / "out")]):
        result = CliRunner().invoke(cli, [*command, str(forged), "--model", str(tiny_models["logistic"])])
        assert result.exit_code == 1 and "do not add up to what was compressed" in result.output, result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
    one = CliRunner().invoke(cli, ["decompress", str(forged), "in/digit0.png", "-o", str(tmp_path / "one"),
                                   "--model", str(tiny_models["logistic"])])
    assert one.exit_code == 0  # a part on its own passes its own checks: only the whole binds names to contents


@pytest.mark.parametrize("digest", [None, "not hex", 7])
def test_a_format_6_table_without_a_sound_digest_is_one_line(tmp_path, varied_archive, tiny_models, digest):
    import json

    raw, _ = _raw_table(varied_archive)
    layout = json.loads(raw[4 : 4 + int.from_bytes(raw[:4], "little")])
    if digest is None:
        del layout["digest"]
    else:
        layout["digest"] = digest
    code, output, _ = _outcome(tmp_path, _with_layout(varied_archive, json.dumps(layout).encode()), tiny_models["logistic"],
                               trace_memory=False)
    assert code == 1 and ("no digest of its entries" in output or "layout digest is not a sha256" in output), output


@pytest.mark.parametrize("side", [100_000, 16_384])
def test_a_classic_png_claiming_a_huge_size_is_one_line(tmp_path, fallback_archive, tiny_models, side):
    """A classic image's PNG whose IHDR claims side x side pixels: 0.2 let Pillow's own bomb check
    raise first, a traceback."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    header, payload = _as_dicts(fallback_archive)
    entry = next(e for e in header["entries"] if e["name"] == "in/digit0.png")
    entry["codec"] = "PNG"
    header, payload = _with_blob(header, payload, "in/digit0.png", png)
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), tiny_models["logistic"], trace_memory=False)
    assert code == 1 and "in/digit0.png" in output, output


def test_an_npy_whose_header_claims_more_than_the_file_holds_is_kept_as_bytes(tmp_path):
    """A 2 KB .npy whose header claims (2^40, 28, 28): 0.2 asked numpy to read it, which
    allocated for the claim (a MemoryError traceback)."""
    import io as bytes_io

    header = bytes_io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (1 << 40, 28, 28)})
    source = tmp_path / "claims.npy"
    source.write_bytes(header.getvalue() + bytes(2000))
    archive = tmp_path / "a.bb"
    result = CliRunner().invoke(cli, ["-q", "compress", str(source), "-o", str(archive)])
    assert result.exit_code == 0, result.output
    assert read_archive(archive.read_bytes()).header["entries"][0]["store"] == "stored"


def test_blobs_shorter_than_any_bbzip_writes_are_refused_before_they_are_built(tmp_path, fallback_archive, tiny_models):
    """0.2 built a dict per declared blob before counting them: 16.7M zero-length classic images
    in a 16 KB archive took 4 GB. Every blob must now have at least MIN_BLOB bytes, so an
    archive declares at most a blob per 16 bytes of its payload."""
    from bbzip.cli.table import MIN_BLOB

    header, payload = _as_dicts(fallback_archive)
    header, payload = _with_blob(header, payload, "in/digit0.png", b"")
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), tiny_models["logistic"], trace_memory=False)
    assert code == 1 and f"a blob shorter than any bbzip writes ({MIN_BLOB} bytes)" in output, output


def test_files_that_need_more_room_than_the_output_has_are_refused_before_anything_is_written(tmp_path, varied_archive,
                                                                                           tiny_models, monkeypatch):
    """0.2 wrote until the disk was full. The sizes the archive declares (a stored file's size, an
    array's pixels, an uncompressed .npz's members) are checked against the output's free room."""
    import shutil as shell_utilities

    header, payload = _as_dicts(varied_archive)
    needed = next(e for e in header["entries"] if e["name"] == "in/notes.txt")["size"]
    real = shell_utilities.disk_usage
    monkeypatch.setattr(shell_utilities, "disk_usage", lambda path: real(path)._replace(free=needed - 1))
    bad = tmp_path / "a.bb"
    bad.write_bytes(varied_archive)
    result = CliRunner().invoke(cli, ["decompress", str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_models["logistic"])])
    assert result.exit_code == 1 and "as the archive declares" in result.output and "nothing was written" in result.output, result.output
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(shell_utilities, "disk_usage", real)
    result = CliRunner().invoke(cli, ["decompress", str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_models["logistic"])])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("shape", [[3, 14, 56], [3, 28, 28, 3]])
def test_an_array_whose_images_are_not_the_model_s_shape_is_damage(tmp_path, varied_archive, tiny_models, shape):
    """A table forged to give the npz's 28x28 grey stack (3 images) another shape of images: the
    model's images would be cut to it (the same number of values, or a colour shape) and give
    other pixels. It is damage, in one line."""
    header, payload = _as_dicts(varied_archive)
    npz = next(e for e in header["entries"] if e["name"] == "in/set.npz")
    member = next(m for m in npz["members"] if m["store"] == "model")
    member["shape"] = shape
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), tiny_models["logistic"], trace_memory=False)
    assert code == 1 and "in/set.npz" in output and "model's shape" in output, output
