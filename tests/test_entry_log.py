"""Compress's entry log (cli/entry_log.py): entries held as objects up to a number, pickled into
the spool past it; every pass sees the same entries either way, and the archive is the same."""
import gc
import tempfile
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bbzip.cli import entry_log
from bbzip.cli.entry_kind import Entry
from bbzip.cli.entry_log import EntryLog, item_counts, stacked_items
from bbzip.cli.file_entries import ImageFile, Stored
from bbzip.cli.fingerprint import Fingerprint
from bbzip.cli.main import cli
from bbzip.cli.reading import set_aside
from bbzip.cli.sources import ScaledDown
from bbzip.cli.spool import Spool


def _image_entry(number: int, spool) -> Entry:
    pixels = np.full((1, 28, 28), number % 256, dtype=np.uint8)
    entry = Entry(f"in/{number:06d}.png", ImageFile, {"format": "PNG", "mode": "L", "width": 28, "height": 28,
                                                     "store": "model", "mtime_ns": number}, items=pixels)
    return set_aside(entry, spool)


def _entries(spool, count: int) -> list[Entry]:
    """Image files (their pixels spooled), a stored file with its blob, a binary entry's symbols
    (ScaledDown) and an array held in memory, which the log must not pickle."""
    entries = [_image_entry(number, spool) for number in range(count)]
    entries[3] = set_aside(Stored.read("in/notes.txt", b"some notes " * 10, {"format": "BYTES"}), spool)
    binary = set_aside(Entry("in/bits.png", ImageFile, {"format": "PNG", "mode": "L", "width": 28, "height": 28,
                                                         "store": "model"}, items=np.zeros((1, 28, 28), dtype=np.uint8)
                             + np.uint8(255) * (np.arange(784).reshape(1, 28, 28) % 3 == 0)), spool)
    entries[5] = binary.changed(items=ScaledDown(binary.items, 255))
    array = np.arange(4 * 28 * 28, dtype=np.uint8).reshape(4, 28, 28)
    entries[7] = Entry("in/array.npy", Stored, {"format": "NPY"}, items=array, fingerprint=Fingerprint(array))
    return entries


def _same(a: Entry, b: Entry) -> None:
    assert (a.name, a.kind, dict(a.meta), len(a.items)) == (b.name, b.kind, dict(b.meta), len(b.items))
    assert a.fingerprint.sha256 == b.fingerprint.sha256 and a.fingerprint.crc32 == b.fingerprint.crc32
    assert [bytes(blob.read()) for blob in a.blobs] == [bytes(blob.read()) for blob in b.blobs]
    if len(a.items):
        np.testing.assert_array_equal(np.asarray(a.items[0 : len(a.items)]), np.asarray(b.items[0 : len(b.items)]))


def test_a_spilled_log_gives_back_every_entry_as_it_was_appended(tmp_path, monkeypatch):
    monkeypatch.setattr(entry_log, "HELD_ENTRIES", 0)
    monkeypatch.setattr(entry_log, "CHUNK_ENTRIES", 4)
    with tempfile.TemporaryFile(dir=tmp_path) as spooled:
        spool = Spool(spooled)
        entries = _entries(spool, 23)  # five chunks spilled, three entries in the tail
        log = EntryLog(spool)
        for entry in entries:
            log.append(entry)
        assert len(log) == 23 and all(isinstance(chunk, entry_log._Spilled) for chunk in log._chunks)
        assert item_counts(log).tolist() == [len(entry.items) for entry in entries]
        for original, back in zip(entries, log, strict=True):
            _same(original, back)
        for index in (22, 0, 13, 5, -1, 7):
            _same(entries[index], log[index])
        assert log[7] is entries[7]  # the array is pinned: every pass sees that one object
        with pytest.raises(IndexError):
            log[23]
        stacked = stacked_items(log)
        np.testing.assert_array_equal(stacked[0 : len(stacked)], np.concatenate([np.asarray(e.items[0 : len(e.items)])
                                                                                 for e in entries if len(e.items)]))


def test_the_log_holds_a_few_bytes_an_entry_once_it_spills(tmp_path, monkeypatch):
    """Past HELD_ENTRIES, what stays in memory per entry is its image count: appending four
    times as many entries leaves about as much held. (Checked to fail with nothing spilled:
    about a kilobyte an entry.)"""
    monkeypatch.setattr(entry_log, "HELD_ENTRIES", 256)
    held = {}
    with tempfile.TemporaryFile(dir=tmp_path) as spooled:
        spool = Spool(spooled)
        for count in (2048, 8192):
            gc.collect()
            tracemalloc.start()
            try:
                log = EntryLog(spool)
                for number in range(count):
                    log.append(_image_entry(number, spool))
                gc.collect()
                held[count] = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
            assert log[count - 1].name == f"in/{count - 1:06d}.png"
            del log
    assert (held[8192] - held[2048]) / (8192 - 2048) < 64


def _digits(folder, images, binary: bool) -> None:
    folder.mkdir()
    for number, pixels in enumerate(images):
        pixels = np.where(pixels >= 128, 255, 0).astype(np.uint8) if binary else pixels
        Image.fromarray(pixels).save(folder / f"{number:04d}.png")


@pytest.mark.parametrize("model", ["bernoulli", "logistic"])
def test_compress_writes_the_same_archive_with_its_entries_spilled(tmp_path, grey_test_images, tiny_models,
                                                                   monkeypatch, model):
    """The same archive bytes whether the entries stay in memory or go to the spool in chunks,
    with the fallback taking some images to classic codecs, an array and a stored file beside
    them; and it decodes."""
    _digits(tmp_path / "in", grey_test_images[:40], binary=model == "bernoulli")
    np.save(tmp_path / "in" / "stack.npy", grey_test_images[40:50])
    (tmp_path / "in" / "notes.txt").write_bytes(b"not an image")
    archives = []
    for held in (1 << 20, 0):
        monkeypatch.setattr(entry_log, "HELD_ENTRIES", held)
        monkeypatch.setattr(entry_log, "CHUNK_ENTRIES", 8)
        out = tmp_path / f"held-{held}.bb"
        result = CliRunner().invoke(cli, ["compress", str(tmp_path / "in"), "-o", str(out), "--model", tiny_models[model],
                                          "-T", "1"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        archives.append(out.read_bytes())
    assert archives[0] == archives[1]
    result = CliRunner().invoke(cli, ["test", str(out), "--model", tiny_models[model]], catch_exceptions=False)
    assert result.exit_code == 0, result.output

