"""Images kept by a classic codec come back with their mode, depth and every pixel."""
import io
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bbzip.cli.main import cli


def _round_trip(tmp_path, source):
    runner = CliRunner()
    archive, out = tmp_path / "a.bb", tmp_path / "out"
    result = runner.invoke(cli, ["-q", "compress", str(source), "-o", str(archive)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["-q", "decompress", str(archive), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out / source.name


@pytest.mark.parametrize("transparent_rows", [0, 5])
def test_rgba_comes_back_rgba_with_the_colour_under_transparent_pixels(tmp_path, transparent_rows):
    """0.1 stored opaque RGBA as WebP, which decodes as RGB (the archive could not be opened),
    and WebP dropped the colour of fully transparent pixels."""
    rgba = np.random.default_rng(transparent_rows).integers(0, 256, (40, 50, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:transparent_rows, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "icon.png")
    restored = Image.open(_round_trip(tmp_path, tmp_path / "icon.png"))
    assert restored.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(restored), rgba)


def _png(width, height, bit_depth, colour_type, samples):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("colour_type, channels", [(2, 3), (6, 4), (4, 2)])
def test_16_bit_colour_and_grey_alpha_pngs_keep_their_16_bits(tmp_path, colour_type, channels):
    """Pillow reads these as 8 bits; 0.1 wrote the 8-bit version back without a word."""
    samples = np.random.default_rng(colour_type).integers(0, 65536, (6, 7 * channels), dtype=np.uint16)
    source = tmp_path / "deep.png"
    source.write_bytes(_png(7, 6, 16, colour_type, samples))
    assert _round_trip(tmp_path, source).read_bytes() == source.read_bytes()


def _same_bytes_back(tmp_path, files: dict[str, bytes]):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    runner = CliRunner()
    result = runner.invoke(cli, ["-q", "compress", str(folder), "-o", str(tmp_path / "a.bb")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["-q", "decompress", str(tmp_path / "a.bb"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for name, content in files.items():
        assert (tmp_path / "out" / "in" / name).read_bytes() == content, name


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_images_whose_metadata_or_depth_a_re_encoding_would_lose_come_back_byte_for_byte(tmp_path, grey_test_images):
    from PIL import PngImagePlugin

    digit = Image.fromarray(grey_test_images[0])
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "someone")
    two_bit = _png(8, 2, 2, 0, np.zeros((2, 1), dtype=np.uint16))  # rows of 2-bit samples (all 0)
    files = {
        "transparent.png": _encoded(digit, "PNG", transparency=0),  # tRNS: 0.1 gave it back opaque
        "text.png": _encoded(digit, "PNG", pnginfo=text),
        "interlaced.png": _encoded(Image.fromarray(grey_test_images[1]).resize((60, 60)), "PNG", interlace=1),
        "deep.pgm": b"P5 28 28 15\n" + (grey_test_images[2] // 17).tobytes(),  # maxval 15
        "tagged.tiff": _encoded(digit, "TIFF", description="a TIFF tag"),
    }
    _same_bytes_back(tmp_path, {**files, "two-bit.png": two_bit})


def test_files_that_are_not_images_are_kept_not_refused(tmp_path, grey_test_images):
    """0.1 aborted the whole archive on one file it could not read as an image."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, grey_test_images[:3])
    _same_bytes_back(tmp_path, {"notes.txt": b"not an image", "broken.png": b"\x89PNG", "old.bb": b"\x89BBZIP\r\n",
                                "digits.npy": buffer.getvalue()})


def test_npz_members_of_any_name_and_kind_come_back(tmp_path, grey_test_images):
    """Members named like np.savez's own arguments (`file`, `allow_pickle`) and members that are
    not arrays: 0.1 dropped the first and gave a traceback on the others."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, array in (("file.npy", grey_test_images[:4]), ("allow_pickle.npy", np.arange(5))):
            content = io.BytesIO()
            np.save(content, array)
            archive.writestr(member, content.getvalue())
        archive.writestr("README.txt", "what these arrays are")
    source = buffer.getvalue()
    _same_bytes_back(tmp_path, {"mixed.npz": source})


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_files_numpy_wrote_come_back_byte_for_byte(tmp_path, grey_test_images, save):
    """Their zip fields (dates, attributes, zip64 headers) are kept, so the rebuilt file is the file."""
    import io

    buffer = io.BytesIO()
    save(buffer, x_test=grey_test_images[:30], y_test=np.arange(30))
    _same_bytes_back(tmp_path, {"set.npz": buffer.getvalue()})


def test_fortran_order_arrays_keep_their_order(tmp_path, grey_test_images):
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(grey_test_images[:6]))
    _same_bytes_back(tmp_path, {"fortran.npy": buffer.getvalue()})


def test_arrays_and_zips_bbzip_cannot_code_are_kept_byte_for_byte(tmp_path, grey_test_images):
    """.npy files that are not uint8 image stacks (floats, one image, a pickled object, a cut
    header) and .npz files that are not zips come back as they were; so do PNM files with
    comments (metadata a re-encoding would drop: before, the model took the PGM and its
    comment was lost) and PBM bitmaps (no maxval)."""
    import io

    def npy(array, **options) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array, **options)
        return buffer.getvalue()

    files = {
        "floats.npy": npy(grey_test_images[:2].astype(np.float64)),
        "one-image.npy": npy(grey_test_images[0]),
        "objects.npy": npy(np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "cut.npy": npy(grey_test_images[:2])[:40],
        "not-a-zip.npz": b"PK\x03\x04 but nothing else",
        "comment.pgm": b"P5\n# a comment\n28 28\n# another\n255\n" + grey_test_images[3].tobytes(),
        "bitmap.pbm": b"P4\n8 2\n\xa5\x5a",
        "plain.pgm": b"P5\n28 28\n255\n" + grey_test_images[4].tobytes(),
    }
    _same_bytes_back(tmp_path, files)
    listing = CliRunner().invoke(cli, ["list", str(tmp_path / "a.bb")]).output
    kept = {line.split()[-1]: line.split()[0] for line in listing.splitlines() if line.split()[-1].startswith("in/")}
    assert all(kept[f"in/{name}"] == "stored" for name in ("floats.npy", "objects.npy", "cut.npy", "not-a-zip.npz"))
    assert kept["in/comment.pgm"] == "stored" and kept["in/plain.pgm"] == "model"


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_files_come_back_with_bytes_after_the_array(tmp_path, grey_test_images, order):
    """numpy reads an .npy and ignores what follows the array; bbzip kept only the array, so
    bytes after it were lost (and compress's check, which compares arrays, did not see it).
    Such a file is now kept byte for byte; a plain one still goes to the model."""
    (tmp_path / "plain").mkdir()
    (tmp_path / "padded").mkdir()
    plain = tmp_path / "plain" / "x.npy"
    np.save(plain, np.asarray(grey_test_images[:4], order=order))
    assert np.array_equal(np.load(_round_trip(tmp_path / "plain", plain)), grey_test_images[:4])
    padded = tmp_path / "padded" / "x.npy"
    padded.write_bytes(plain.read_bytes() + b"trailing notes")
    assert _round_trip(tmp_path / "padded", padded).read_bytes() == padded.read_bytes()


@pytest.mark.parametrize("fortran", [False, True])
def test_npy_headers_are_the_ones_np_save_writes(fortran):
    """Decompress writes an .npy file's header and then its images as they decode (there is
    no whole array to hand to np.save): the header is np.save's, C or Fortran order."""
    from bbzip.cli.array_entries import npy_header

    for shape in [(5, 28, 28), (123456, 7, 9)]:
        array = np.zeros(shape, dtype=np.uint8, order="F" if fortran else "C")
        saved = io.BytesIO()
        np.save(saved, array)
        header = npy_header(shape, fortran)
        assert saved.getvalue()[: len(header)] == header and len(saved.getvalue()) == len(header) + array.size


def _forbid_whole_reads(monkeypatch):
    """Reading an .npy or .npz file whole, or an image member of an .npz whole, fails."""
    import pathlib
    import zipfile

    read_bytes, read_member = pathlib.Path.read_bytes, zipfile.ZipFile.read

    def guarded_read_bytes(self):
        assert self.suffix not in (".npy", ".npz"), f"{self} read whole"
        return read_bytes(self)

    def guarded_read_member(self, name, *args):
        content = read_member(self, name, *args)
        assert not content.startswith(b"\x93NUMPY") or b"|u1" not in content[:128], f"{name} read whole"
        return content

    monkeypatch.setattr(pathlib.Path, "read_bytes", guarded_read_bytes)
    monkeypatch.setattr(zipfile.ZipFile, "read", guarded_read_member)


@pytest.mark.parametrize("binary", [False, True])
def test_arrays_are_read_from_their_files_as_they_are_needed(tmp_path, grey_test_images, monkeypatch, binary):
    """What bounds compress's memory within one file: a C-order .npy and the image members of
    an .npz (deflated) are never read whole (cli/sources.py), with images kept classic among
    them and, for two-valued images, the binary model; every file comes back byte for byte.
    (Checked to fail when the files are read whole.)"""
    from benchmarks.unlike_mnist import image_sets

    odd = image_sets(binary=binary, count=6)["inverted"]
    digits = (grey_test_images[:40] > 127).astype(np.uint8) if binary else grey_test_images[:40]
    stack = np.concatenate([digits[:20], odd[:3], digits[20:], odd[3:]])
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "stack.npy", stack)
    np.savez_compressed(folder / "set.npz", first=stack[:25], labels=np.arange(46), second=stack[25:])
    _forbid_whole_reads(monkeypatch)
    runner = CliRunner()
    result = runner.invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "a.bb"), "-T", "1"])
    assert result.exit_code == 0 and "images smaller with a classic codec" in result.output, result.output
    assert f"by ar-{'binary-' if binary else ''}mnist-rha" in result.output, result.output
    monkeypatch.undo()
    result = runner.invoke(cli, ["-q", "decompress", str(tmp_path / "a.bb"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for name in ("stack.npy", "set.npz"):
        assert (tmp_path / "out" / "in" / name).read_bytes() == (folder / name).read_bytes(), name


def test_an_npz_member_is_inflated_once_a_pass(tmp_path, grey_test_images, monkeypatch):
    """The fallback reads each chunk as pixels and as symbols (two stacks over one member): the
    second read is the run just read, not the member inflated again from its start."""
    from bbzip.cli import fallback, sources

    monkeypatch.setattr(fallback, "CHUNK_IMAGES", 50)
    np.savez_compressed(tmp_path / "set.npz", x=grey_test_images[:400])
    starts = []
    start = sources.NpzMemberImages._start
    monkeypatch.setattr(sources.NpzMemberImages, "_start", lambda self: (starts.append(1), start(self))[1])
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "set.npz"), "-o", str(tmp_path / "a.bb"), "-T", "1"])
    assert result.exit_code == 0, result.output
    assert len(starts) <= 6  # a pass each: fingerprint, the model's choice, fallback, coding, check (8 chunks)


@pytest.mark.parametrize("name", ["stack.npy", "set.npz"])
def test_an_array_changed_while_it_is_compressed_is_an_error(tmp_path, grey_test_images, monkeypatch, name):
    """Its images are read several times (fingerprint, fallback choice, coding): a file
    rewritten meanwhile (same size, other pixels) gives exit 1 and no archive, never an archive
    of part old, part new images."""
    import os

    from bbzip.cli import fallback

    source = tmp_path / name
    save = np.save if name.endswith(".npy") else lambda path, array: np.savez(path, x=array)
    save(source, grey_test_images[:30])
    route = fallback.route

    def rewriting_route(*args, **kwargs):
        save(source, grey_test_images[30:60])
        os.utime(source, ns=(1, 10**18))  # a new time, whatever the clock's resolution
        return route(*args, **kwargs)

    monkeypatch.setattr(fallback, "route", rewriting_route)
    result = CliRunner().invoke(cli, ["compress", str(source), "-o", str(tmp_path / "a.bb"), "-T", "1"])
    assert result.exit_code == 1 and "changed while it was compressed" in result.output, result.output
    assert not (tmp_path / "a.bb").exists()


def test_an_npz_whose_member_fails_its_crc_is_kept_byte_for_byte(tmp_path, grey_test_images):
    """The zip's own check of a member read as needed: a damaged member makes the file one to
    keep as it is, not an archive of pixels the zip says are wrong."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, x=grey_test_images[:5])
    damaged = bytearray(buffer.getvalue())
    damaged[400] ^= 0xFF  # inside x.npy's pixels: its crc32 no longer matches
    _same_bytes_back(tmp_path, {"damaged.npz": bytes(damaged)})
    listing = CliRunner().invoke(cli, ["list", str(tmp_path / "a.bb")]).output
    assert any(line.split()[0] == "stored" and line.endswith("in/damaged.npz") for line in listing.splitlines()), listing


def test_an_array_from_a_named_pipe_is_read_once(tmp_path, grey_test_images):
    """Arrays are read from their files as they are needed, more than once; a named pipe can
    be read only once, so it is read whole, as before. (Checked to fail when the pipe's header
    is read to look for an array first: the second read then waits for a writer that is gone.)"""
    import os
    import subprocess
    import sys
    import threading
    from pathlib import Path

    source = tmp_path / "src.npy"
    np.save(source, grey_test_images[:20])
    pipe = tmp_path / "in" / "pipe.npy"
    pipe.parent.mkdir()
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_bytes(source.read_bytes()), daemon=True)
    writer.start()
    archive = tmp_path / "a.bb"
    subprocess.run([sys.executable, "-m", "bbzip", "-q", "compress", str(pipe), "-o", str(archive), "-T", "1"],
                   check=True, timeout=60, cwd=Path(__file__).parents[1])
    result = CliRunner().invoke(cli, ["-q", "decompress", str(archive), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "pipe.npy").read_bytes() == source.read_bytes()


def test_stored_bytes_use_a_dictionary_the_size_of_the_file():
    """preset 9 sets up a 64 MiB dictionary whatever the file (90 MB of memory to compress
    1 MiB, 65 MiB to decode any blob); bbzip's xz gives the same compressed data with a
    dictionary no larger than the file, so a small blob decodes within 1 MiB."""
    import lzma

    from bbzip.cli.xz import xz

    raw = b"bbzip keeps files it cannot code as images byte for byte. " * 2000
    blob = xz(raw)
    assert len(blob) == len(lzma.compress(raw, preset=9))
    assert lzma.LZMADecompressor(memlimit=1 << 20).decompress(blob) == raw
    with pytest.raises(lzma.LZMAError):
        lzma.LZMADecompressor(memlimit=1 << 20).decompress(lzma.compress(raw, preset=9))


def test_an_empty_file_s_blob_as_bbzip_writes_it_needs_no_decoder(monkeypatch):
    """The xz of nothing, as compress writes it, is known to be empty without a decoder (a million
    empty files' blobs: 2 s of `test`); any other blob declared empty still goes through it."""
    import lzma

    from bbzip.cli import xz as xz_module

    empty = xz_module.xz(b"")
    other_empty = lzma.compress(b"", format=lzma.FORMAT_XZ, check=lzma.CHECK_SHA256)
    damaged = empty[:-1] + bytes([empty[-1] ^ 1])
    decoders = []
    pieces = xz_module.XzPieces
    monkeypatch.setattr(xz_module, "XzPieces", lambda blob: decoders.append(blob) or pieces(blob))
    assert xz_module.unxz(empty, 0) == b"" and decoders == []
    assert xz_module.unxz(other_empty, 0) == b"" and decoders == [other_empty]
    with pytest.raises((ValueError, lzma.LZMAError)):  # what a restore reports as a damaged entry
        xz_module.unxz(damaged, 0)
    with pytest.raises(ValueError):
        xz_module.unxz(empty, 1)


def test_small_reads_of_an_archive_file_share_a_window(tmp_path, monkeypatch):
    """Many small reads in order (the blobs of many small files) cost a system call for each
    window of READ_AHEAD bytes, not one each, and give the bytes at their places; a file cut
    short under a window is still an EOFError."""
    import os

    from bbzip.models import files

    data = np.random.default_rng(0).integers(0, 256, 3 * files.READ_AHEAD + 77, dtype=np.uint8).tobytes()
    path = tmp_path / "archive"
    path.write_bytes(data)
    calls = []
    pread = os.pread
    monkeypatch.setattr(files.os, "pread", lambda fd, n, at: calls.append(n) or pread(fd, n, at))
    with open(path, "rb") as f:
        source = files.ByteSource.of_file(f).part(5, len(data) - 5)
        for offset in range(0, len(data) - 5 - 40, 40):
            assert source.read(offset, 32) == data[5 + offset : 5 + offset + 32]
        assert len(calls) <= 4
        big = source.read(7, files.READ_AHEAD)  # a large read is its own call
        assert big == data[12 : 12 + files.READ_AHEAD] and calls[-1] == files.READ_AHEAD
        whole = files.ByteSource.of_file(f)
        os.truncate(path, 100)
        with pytest.raises(EOFError):
            whole.read(90, 32)


def test_a_folder_s_image_pixels_wait_in_the_spool_not_in_memory(tmp_path):
    """Compress holds every file's entry until the archive is written; an image file's entry
    held its pixels, so a folder of photos took their whole size in memory. They wait in the
    spool now, read back by each pass, and come back as they were read."""
    import gc
    import tempfile
    import tracemalloc

    from bbzip.cli.console import Output
    from bbzip.cli.inputs import Inputs
    from bbzip.cli.reading import read_inputs
    from bbzip.cli.spool import Spool

    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (300, 400, 3), dtype=np.uint8) for _ in range(8)]  # 2.9 MB of pixels in all
    (tmp_path / "photos").mkdir()
    for number, pixels in enumerate(photos):
        Image.fromarray(pixels).save(tmp_path / "photos" / f"{number}.png", compress_level=0)
    found = Inputs([str(tmp_path / "photos")])
    with tempfile.TemporaryFile(dir=tmp_path) as spooled:
        gc.collect()
        tracemalloc.start()
        try:
            entries = read_inputs(Output(quiet=True), found, lambda stack: True, False, Spool(spooled), 1)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert held < sum(pixels.nbytes for pixels in photos) / 8
        for entry, pixels in zip(entries, photos, strict=True):
            assert entry.meta["store"] == "model"
            np.testing.assert_array_equal(np.asarray(entry.items[0:1])[0], pixels)


def test_files_read_in_jobs_hold_no_stat_result_each(tmp_path, monkeypatch):
    """Reading a folder in jobs keeps each file's mode, size and time as it was listed (the job
    tells a worker which file it means by them); an os.stat_result a file (about 700 bytes)
    was most of what the reading held beside the entries. (Checked to fail with one kept a file.)"""
    import os
    import tempfile
    import tracemalloc

    from bbzip.cli import reading
    from bbzip.cli.console import Output
    from bbzip.cli.inputs import Inputs
    from bbzip.cli.spool import Spool
    from bbzip.models.coder_choice import fits_a_default

    count = 2000
    (tmp_path / "in").mkdir()
    for number in range(count):
        (tmp_path / "in" / f"{number:04d}.txt").write_bytes(b"%d" % number)
    found = Inputs([str(tmp_path / "in")])
    monkeypatch.setattr(reading, "JOB_FILES", 8)
    held = []
    set_aside = reading.set_aside

    def first_held(entry, spool):
        if not held:  # everything listed, the first job's files read
            held.append(tracemalloc.get_traced_memory()[0])
        return set_aside(entry, spool)

    monkeypatch.setattr(reading, "set_aside", first_held)
    with tempfile.TemporaryFile(dir=tmp_path) as spooled:
        tracemalloc.start()
        try:
            entries = reading.read_inputs(Output(quiet=True), found, fits_a_default(), False, Spool(spooled), 2)
        finally:
            tracemalloc.stop()
        assert held[0] < 200 * count
        # (read while the spool is open: an entry log may keep its entries there)
        assert [entry.name for entry in entries] == [f"in/{number:04d}.txt" for number in range(count)]
        assert all(entry.meta["mtime_ns"] == os.stat(tmp_path / entry.name).st_mtime_ns // 10**9 * 10**9
                   for entry in entries)


def test_the_model_s_choice_reads_no_image_file_back_for_its_values(tmp_path, monkeypatch):
    """Whether an image is two-valued (and which: 0/1 or 0/255) is taken as its file is read,
    from the pixels in hand; the model's choice asks it of every image file, which read each
    back from the spool for it. The answer is binary_scale's of the pixels."""
    import tempfile

    from bbzip.cli import coding, sources
    from bbzip.cli.console import Output
    from bbzip.cli.inputs import Inputs
    from bbzip.cli.reading import read_inputs
    from bbzip.cli.spool import Spool
    from bbzip.models.pixels import binary_scale

    rng = np.random.default_rng(0)
    digits = rng.random((4, 28, 28)) < 0.3
    (tmp_path / "in").mkdir()
    images = [Image.fromarray(digits[0]), Image.fromarray(digits[1].astype(np.uint8) * 255),
              Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)), Image.new("L", (28, 28)),
              Image.fromarray(np.where(digits[2], 255, digits[3]).astype(np.uint8))]  # 0, 1 and 255: not two-valued
    for number, image in enumerate(images):
        image.save(tmp_path / "in" / f"{number}.png")
    with tempfile.TemporaryFile(dir=tmp_path) as spooled:
        spool = Spool(spooled)
        entries = read_inputs(Output(quiet=True), Inputs([str(tmp_path / "in")]), lambda stack: True, False, spool, 1)
        assert [entry.items.known_binary_scale for entry in entries] == \
            [binary_scale(np.asarray(entry.items[0:1])) for entry in entries] == [1, 255, None, 1, None]
        read_back = []
        spooled_slice = sources.SpooledImages.__getitem__
        monkeypatch.setattr(sources.SpooledImages, "__getitem__",
                            lambda images, span: read_back.append(span) or spooled_slice(images, span))
        coder, _ = coding.choose_default(entries, spool)
        assert coder is not None and read_back == []


def test_checking_an_archive_makes_no_image_of_its_model_pixels(tmp_path, grey_test_images, monkeypatch):
    """compress's check and `bbzip test` compare each image file's pixels with what was read
    and write nothing: no image is made of them (one a file was a tenth of the check)."""
    from bbzip.cli import file_entries

    (tmp_path / "in").mkdir()
    for number, pixels in enumerate(grey_test_images[:12]):
        Image.fromarray(pixels).save(tmp_path / "in" / f"{number}.png")
    made = file_entries.model_image
    monkeypatch.setattr(file_entries, "model_image", lambda pixels, mode: pytest.fail("an image was made"))
    runner = CliRunner()
    for args in (["compress", str(tmp_path / "in"), "-o", str(tmp_path / "a.bb"), "-T", "1"], ["test", str(tmp_path / "a.bb")]):
        result = runner.invoke(cli, ["-q", *args])
        assert result.exit_code == 0, result.output
    monkeypatch.setattr(file_entries, "model_image", made)
    assert runner.invoke(cli, ["-q", "decompress", str(tmp_path / "a.bb"), "-o", str(tmp_path / "out")]).exit_code == 0
    for number, pixels in enumerate(grey_test_images[:12]):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "in" / f"{number}.png")), pixels)



_PLACING = """
import gc, sys, tracemalloc
from pathlib import Path
from bbzip.cli.placing import Staging

class Reader:  # what Staging.add takes of coding.EntryReader: an entry's index and its bytes
    is_link, attributes = False, None

    def __init__(self, index):
        self.index = index

    def restore(self, sink):
        sink.write(name_of(self.index).encode())

def name_of(index):  # made each time it is asked for, as an archive's names are
    return f"out/{index:05d}.txt"

class Names:
    def __getitem__(self, index):
        return name_of(index)

with Staging(Path(sys.argv[1]), Names()) as staging:
    for number in range(int(sys.argv[2])):
        assert staging.add(Reader(number)) is None
    gc.collect()
    tracemalloc.start()
    staging.place()
    print(tracemalloc.get_traced_memory()[1])
"""


def test_putting_decoded_files_in_place_holds_no_path_a_file(tmp_path):
    """Decompress stages every file, then moves each into place, remembering which it moved (to
    take them back if a later one fails): as a Path each, with a tuple a file to sort them,
    that was most of what a million files cost it. Indices now. (Measured in a process of its
    own, where no other thread allocates; checked to fail with a Path a file kept: about 500
    bytes a file.)"""
    import subprocess
    import sys

    peaks = {}
    for count in (500, 2500):  # the difference: what a file costs, without what the first move costs (imports, caches)
        peaks[count] = int(subprocess.run([sys.executable, "-c", _PLACING, str(tmp_path / f"restored-{count}"), str(count)],
                                          check=True, capture_output=True, text=True).stdout)
        assert sorted(path.name for path in (tmp_path / f"restored-{count}" / "out").iterdir()) == \
            [f"{number:05d}.txt" for number in range(count)]
    assert (peaks[2500] - peaks[500]) / 2000 < 100
