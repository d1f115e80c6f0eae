"""Hostile archives: headers rewritten with their checksums recomputed (issue 9, items 11-16)."""
import copy
import lzma
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.archive import read_archive, write_archive
from cli.main import cli


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
    result = CliRunner().invoke(cli, ["-q", "compress", str(folder), "-o", str(archive), "--model", str(tiny_models["logistic"])])
    assert result.exit_code == 0, result.output
    return read_archive(archive.read_bytes())


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
    header = copy.deepcopy(varied_archive.header)
    index = next(i for i, e in enumerate(header["entries"]) if e["name"] == "in/digit.png")
    stored = next(e for e in header["entries"] if e["name"] == "in/notes.txt")
    header["entries"][index] = {**copy.deepcopy(stored), "name": twin}
    code, output, _ = _outcome(tmp_path, write_archive(header, varied_archive.payload), tiny_models["logistic"])
    assert code == 1 and ("two entries, one file" in output or "also entry" in output)


def test_an_xz_bomb_stops_at_the_declared_size(tmp_path, varied_archive, tiny_models):
    header = copy.deepcopy(varied_archive.header)
    bomb = lzma.compress(b"\0" * (256 << 20), preset=9)  # 256 MiB in about 40 KB
    entry = next(e for e in header["entries"] if e["name"] == "in/notes.txt")
    entry["blobs"] = [{"offset": len(varied_archive.payload), "length": len(bomb)}]
    payload = varied_archive.payload + bomb
    header["payload_length"] = len(payload)
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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_headers_give_one_line_or_a_correct_archive(tmp_path, varied_archive, tiny_models, data):
    """Any one field of the header replaced, deleted, or a field added, checksums recomputed:
    every command exits 0 or 1 with one line, never a traceback, never a partial output, in
    bounded memory."""
    header = copy.deepcopy(varied_archive.header)
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
    _outcome(tmp_path, write_archive(header, varied_archive.payload), tiny_models["logistic"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_payloads_give_one_line_and_never_wrong_files(tmp_path, varied_archive, tiny_models, data):
    """Bytes of the payload (model stream, classic and stored blobs) changed, checksums recomputed."""
    payload = bytearray(varied_archive.payload)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(payload) - 1))
        payload[position] ^= data.draw(st.integers(1, 255))
    code, _, out = _outcome(tmp_path, write_archive(varied_archive.header, bytes(payload)), tiny_models["logistic"],
                            trace_memory=False)
    if code == 0:  # possible (a PNG chunk's own crc is not needed to decode it), but only exactly right
        original, _, reference = _outcome(tmp_path, write_archive(varied_archive.header, varied_archive.payload),
                                          tiny_models["logistic"], trace_memory=False)
        assert original == 0 and _tree(out) == _tree(reference)
