"""The command line end to end: round trips, bad input, exit codes, no partial output."""
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bbzip.cli.archive import MAGIC
from bbzip.cli.main import cli
from bbzip.models.files import leftover_prefix


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def compress(tmp_path, inputs, model, *extra):
    """The test models are barely trained: without --no-fallback, classic codecs would take
    every image and the model stream these tests are about would be empty."""
    out = tmp_path / "out.bb"
    result = run("compress", *inputs, "-o", out, "--model", model, "--no-fallback", *extra)
    assert result.exit_code == 0, result.output
    return out


def assert_same_files(original_root, restored_root):
    for original in sorted(p for p in original_root.rglob("*") if p.is_file()):
        restored = restored_root / original.relative_to(original_root.parent)
        assert restored.exists(), restored
        if original.suffix == ".npy":
            np.testing.assert_array_equal(np.load(original), np.load(restored))
        else:
            a, b = Image.open(original), Image.open(restored)
            assert a.format == b.format and a.mode == b.mode
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_round_trip_folder(tmp_path, image_folder, tiny_models):
    archive = compress(tmp_path, [image_folder], tiny_models["logistic"])
    result = run("decompress", archive, "-o", tmp_path / "restored", "--model", tiny_models["logistic"])
    assert result.exit_code == 0, result.output
    assert_same_files(image_folder, tmp_path / "restored")
    listing = run("list", archive)
    assert "classic" in listing.output and "odd-size.png" in listing.output and "bpd" in listing.output


def test_binary_images_round_trip_with_the_bernoulli_model(tmp_path, grey_test_images, tiny_models):
    folder = tmp_path / "bin"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(grey_test_images[i] >= 128).save(folder / f"{i}.png")  # mode "1"
        Image.fromarray(np.where(grey_test_images[i + 5] >= 128, 255, 0).astype(np.uint8)).save(folder / f"g{i}.png")
    archive = compress(tmp_path, [folder], tiny_models["bernoulli"])
    assert run("decompress", archive, "-o", tmp_path / "r", "--model", tiny_models["bernoulli"]).exit_code == 0
    assert_same_files(folder, tmp_path / "r")


def test_archives_go_through_stdout_and_stdin(tmp_path, image_folder, tiny_models):
    """`compress -o -` writes the same bytes as to a file; `test -` and `decompress -` read them."""
    model = str(tiny_models["logistic"])
    archive = compress(tmp_path, [image_folder / "00.png"], model)
    piped = CliRunner().invoke(cli, ["-q", "compress", str(image_folder / "00.png"), "-o", "-", "--model", model, "--no-fallback"])
    assert piped.exit_code == 0 and piped.stdout_bytes == archive.read_bytes()
    tested = CliRunner().invoke(cli, ["test", "-", "--model", model], input=piped.stdout_bytes)
    assert tested.exit_code == 0 and "OK" in tested.output
    restored = CliRunner().invoke(cli, ["decompress", "-", "-o", str(tmp_path / "d"), "--model", model], input=piped.stdout_bytes)
    assert restored.exit_code == 0, restored.output
    assert (tmp_path / "d" / "00.png").read_bytes() == (image_folder / "00.png").read_bytes()


def test_nothing_is_overwritten_without_force(tmp_path, image_folder, tiny_models):
    archive = compress(tmp_path, [image_folder / "00.png"], tiny_models["logistic"])
    before = archive.read_bytes()
    again = run("compress", image_folder / "01.png", "-o", archive, "--model", tiny_models["logistic"])
    assert again.exit_code == 1 and "already exists" in again.output
    assert archive.read_bytes() == before
    target = tmp_path / "d"
    target.mkdir()
    (target / "00.png").write_bytes(b"mine")
    clash = run("decompress", archive, "-o", target, "--model", tiny_models["logistic"])
    assert clash.exit_code == 1 and (target / "00.png").read_bytes() == b"mine"
    assert run("decompress", archive, "-o", target, "-f", "--model", tiny_models["logistic"]).exit_code == 0


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda p: p / "missing.png", "no such file"),
        (lambda p: _mkdir(p / "empty"), "holds no files"),
    ],
)
def test_bad_inputs(tmp_path, tiny_models, make_input, message):
    target = make_input(tmp_path)
    out = tmp_path / "out.bb"
    result = run("compress", target, "-o", out, "--model", tiny_models["logistic"])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.bb*"))


def _write(path, data):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


@pytest.fixture
def small_archive(tmp_path, image_folder, tiny_models):
    return compress(tmp_path, [image_folder / "00.png", image_folder / "01.png", image_folder / "stack.npy"],
                    tiny_models["logistic"])


def _decompress_fails(tmp_path, data, model, expect=None):
    bad = tmp_path / "bad.bb"
    bad.write_bytes(data)
    out_dir = tmp_path / "never"
    result = run("decompress", bad, "-o", out_dir, "--model", model)
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.output.startswith("bbzip: ") and len(result.output.strip().splitlines()) == 1
    assert not out_dir.exists() or not any(out_dir.iterdir())
    if expect:
        assert expect in result.output


def test_truncated_archives_fail_cleanly(tmp_path, small_archive, tiny_models):
    """Cuts of the file (the table's payload length no longer matches), and cuts of the model
    stream behind a table rewritten to match them (the record's own block framing notices)."""
    from bbzip.cli.archive import read_archive, write_archive

    data = small_archive.read_bytes()
    for cut in sorted({0, 1, 5, 8, 10, 14, 40, len(data) // 3, len(data) // 2, len(data) - 33, len(data) - 1}):
        _decompress_fails(tmp_path, data[:cut], tiny_models["logistic"])
    archive = read_archive(data)
    stream = archive.model_stream.read()
    for keep in (10, len(stream) // 2, len(stream) - 33, len(stream) - 1):
        header = {"entries": list(archive.header["entries"]), "payload_length": archive.header["payload_length"] - len(stream) + keep,
                  "model_stream": {**archive.header["model_stream"], "length": keep}}
        _decompress_fails(tmp_path, write_archive(header, stream[:keep] + archive.payload.read()[len(stream):]), tiny_models["logistic"])


def test_flipped_bits_never_give_wrong_pixels(tmp_path, small_archive, tiny_models):
    """One bit flipped anywhere: the table's crc32, the record header's crc32, a block's sha256,
    a classic image's crc32 or xz's check says so (format 4 has no archive-wide checksum that
    would hide the inner checks); most flips land in the payload, behind an intact table."""
    from bbzip.cli.archive import read_archive

    data = small_archive.read_bytes()
    payload_start = len(data) - len(read_archive(data).payload)
    rng = np.random.default_rng(0)
    positions = rng.choice(len(data), size=25, replace=False)
    assert (positions >= payload_start).sum() > 15
    for position in positions:
        corrupt = bytearray(data)
        corrupt[position] ^= 1 << int(rng.integers(8))
        _decompress_fails(tmp_path, bytes(corrupt), tiny_models["logistic"])


def test_corrupt_model_stream_behind_a_valid_checksum_is_still_caught(tmp_path, small_archive, tiny_models):
    """Flip bits inside the model stream, the table intact: the decoder itself must notice
    (engine error, end-state check or the block's sha256), never write wrong pixels."""
    from bbzip.cli.archive import read_archive, write_archive

    archive = read_archive(small_archive.read_bytes())
    stream = archive.header["model_stream"]
    rng = np.random.default_rng(1)
    for position in rng.choice(stream["length"], size=12, replace=False):
        payload = bytearray(archive.payload.read())
        payload[stream["offset"] + position] ^= 1 << int(rng.integers(8))
        _decompress_fails(tmp_path, write_archive(archive.header, bytes(payload)), tiny_models["logistic"])


def test_a_block_changed_after_its_check_is_decoded_again_and_refused(tmp_path, image_folder, tiny_models, monkeypatch):
    """compress decodes each block where it codes it, and its final check takes a block's images
    without decoding it again only where the message read back from disk is the one that was
    checked (its sha256): a message changed in between (here, in the payload before the archive
    is written) is decoded again, and the archive refused."""
    from bbzip.cli import coding

    original_build = coding.build

    def build_then_damage(entries, coder, settings, payload, **kwargs):
        header = original_build(entries, coder, settings, payload, **kwargs)
        middle = header["model_stream"]["length"] // 2  # inside the one block's message
        payload.seek(middle)
        byte = payload.read(1)
        payload.seek(middle)
        payload.write(bytes([byte[0] ^ 0x10]))
        return header

    monkeypatch.setattr(coding, "build", build_then_damage)
    out = tmp_path / "out.bb"
    result = run("compress", image_folder, "-o", out, "--model", tiny_models["logistic"], "--no-fallback")
    assert result.exit_code == 1 and "would not decode" in result.output, result.output
    assert not out.exists()


def test_not_bbzip_and_newer_version(tmp_path, small_archive, tiny_models):
    _decompress_fails(tmp_path, b"hello, world" * 10, tiny_models["logistic"], "not in bbzip format")
    data = bytearray(small_archive.read_bytes())
    struct.pack_into("<H", data, len(MAGIC), 99)
    _decompress_fails(tmp_path, bytes(data), tiny_models["logistic"], "newer")


@pytest.mark.parametrize("version, maker", [(2, "bbzip 0.1 (format 2)"), (3, "bbzip 0.2 (format 3")])
def test_earlier_formats_are_refused_with_the_reason(tmp_path, small_archive, tiny_models, version, maker):
    """Archives of earlier formats are not called damaged: the message says what they are."""
    data = bytearray(small_archive.read_bytes())
    struct.pack_into("<H", data, len(MAGIC), version)
    _decompress_fails(tmp_path, bytes(data), tiny_models["logistic"], maker)


def test_a_model_stream_of_another_numerics_version_is_refused(tmp_path, small_archive, tiny_models):
    import zlib

    from bbzip.cli.archive import read_archive, write_archive
    from bbzip.models import api

    archive = read_archive(small_archive.read_bytes())
    record = archive.model_stream.read()
    length = struct.unpack_from("<I", record, len(api.MAGIC))[0]
    start = len(api.MAGIC) + 4
    header = api.inflate_header(record[start : start + length])
    header["numerics"] = 2
    new_header = api.deflate_header(header)
    new_record = b"".join([api.MAGIC, struct.pack("<I", len(new_header)), new_header,
                           struct.pack("<I", zlib.crc32(new_header)), record[start + length + 4 :]])
    archive.header["model_stream"]["length"] = len(new_record)
    payload = new_record + archive.payload.read()[len(record):]
    for entry in archive.header["entries"]:
        for blob in entry["blobs"]:
            blob["offset"] += len(new_record) - len(record)
    archive.header["payload_length"] = len(payload)
    _decompress_fails(tmp_path, write_archive(archive.header, payload), tiny_models["logistic"], "numerics version 2")


def test_missing_model_is_named(tmp_path, small_archive):
    result = run("decompress", small_archive, "-o", tmp_path / "x")
    assert result.exit_code == 1 and "tiny-logistic.safetensors" in result.output and "not installed" in result.output


def test_usage_errors_exit_2(tmp_path):
    assert run("compress").exit_code == 2
    assert run("decompress").exit_code == 2
    assert run("compress", tmp_path, "-o", tmp_path / "o.bb", "--k-steps", "-1").exit_code == 2


def test_k_step_threads_do_not_change_the_archive(tmp_path, grey_test_images, tiny_models):
    """K steps on 400 images in batches of up to 150 (after the ramp): with -T 1 one thread runs
    each batch whole; with -T 2 two threads run half of each batch of 128 or more. The archives
    must be the same bytes. (Checked to fail: with each chunk's noise indexed from the batch's
    first image instead of its own, the -T 2 archive differed.)"""
    np.save(tmp_path / "x.npy", grey_test_images[:400])
    model = str(tiny_models["logistic"])
    archives = []
    for threads in (1, 2):
        archives.append(tmp_path / f"t{threads}.bb")
        result = run("compress", tmp_path / "x.npy", "-o", archives[-1], "--model", model, "--k-steps", 3,
                     "--batch-size", 150, "-T", threads)
        assert result.exit_code == 0, result.output
    assert archives[0].read_bytes() == archives[1].read_bytes()
    assert run("decompress", archives[0], "-o", tmp_path / "r", "--model", model, "-T", 2).exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "r" / "x.npy"), grey_test_images[:400])


def test_many_small_files_cost_little_beside_their_pixels(tmp_path, grey_test_images, tiny_models):
    """The columnar entry table: 300 PNG files cost under a byte a file more than the same
    images as one .npy (format 3's JSON table: 17 bytes a file). Measured: 0.3 bytes a file."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        Image.fromarray(grey_test_images[i]).save(folder / f"digit-{i:05d}.png")
    np.save(tmp_path / "same.npy", grey_test_images[:300])
    files = compress(tmp_path, [folder], tiny_models["logistic"]).rename(tmp_path / "files.bb")
    array = compress(tmp_path, [tmp_path / "same.npy"], tiny_models["logistic"])
    assert (files.stat().st_size - array.stat().st_size) / 300 < 1
    restored = tmp_path / "restored"
    assert run("decompress", files, "-o", restored, "--model", tiny_models["logistic"]).exit_code == 0
    assert_same_files(folder, restored)


@pytest.fixture
def blocked_archive(tmp_path, grey_test_images, tiny_models):
    """40 one-image files and a 30-image .npy in blocks of 16 images: 70 images, 5 blocks."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(grey_test_images[i]).save(folder / f"{i:02d}.png")
    np.save(folder / "stack.npy", grey_test_images[40:70])
    out = tmp_path / "blocked.bb"
    result = run("compress", folder, "-o", out, "--model", tiny_models["logistic"], "--block-images", 16, "-T", 1, "--no-fallback")
    assert result.exit_code == 0, result.output
    return folder, out


def _damage_block(archive_path, block: int, tmp_path) -> Path:
    """The archive with one byte of one block's message changed (the table is intact)."""
    from bbzip.cli.archive import read_archive
    from bbzip.models import api

    data = archive_path.read_bytes()
    archive = read_archive(data)
    info = api.read_record(archive.model_stream)
    message = info.blocks[block].message.read()
    where = len(data) - len(archive.payload) + archive.model_stream.read().index(message) + len(message) // 2
    damaged = bytearray(data)
    damaged[where] ^= 0x10
    path = tmp_path / "damaged.bb"
    path.write_bytes(bytes(damaged))
    return path


def test_a_damaged_block_loses_only_its_own_entries(tmp_path, blocked_archive, tiny_models):
    """Block 1 holds images 16..31: files 16.png..31.png. `test` names them, `decompress` writes
    nothing, `decompress --salvage` writes every other file, exactly, and exits 1."""
    folder, archive = blocked_archive
    model = tiny_models["logistic"]
    damaged = _damage_block(archive, 1, tmp_path)
    result = run("test", damaged, "--model", model)
    assert result.exit_code == 1 and "16 of 41 entries damaged: in/16.png, in/17.png" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run("decompress", damaged, "-o", tmp_path / "none", "--model", model).exit_code == 1
    assert not (tmp_path / "none").exists()
    result = run("decompress", damaged, "-o", tmp_path / "saved", "--model", model, "--salvage")
    assert result.exit_code == 1 and "the other 25 files written" in result.output
    saved = sorted(p.name for p in (tmp_path / "saved" / "in").iterdir())
    assert saved == sorted([f"{i:02d}.png" for i in range(40) if not 16 <= i < 32] + ["stack.npy"])
    np.testing.assert_array_equal(np.load(tmp_path / "saved" / "in" / "stack.npy"), np.load(folder / "stack.npy"))
    for name in saved[:-1]:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "saved" / "in" / name)),
                                      np.asarray(Image.open(folder / name)))


def test_named_entries_are_extracted_from_their_blocks_alone(tmp_path, blocked_archive, tiny_models, monkeypatch):
    """`decompress a.bb NAME...` decodes only the blocks that hold NAME's images: with block 1
    damaged, 03.png (block 0) and stack.npy (blocks 2..4) still come out, and 20.png does not."""
    folder, archive = blocked_archive
    model = tiny_models["logistic"]
    damaged = _damage_block(archive, 1, tmp_path)
    from bbzip.models import blocks

    decoded_counts = []
    original = blocks.decode_blocks

    def counting(model_, streams, counts, *args, **kwargs):
        decoded_counts.append(list(counts))
        return original(model_, streams, counts, *args, **kwargs)

    monkeypatch.setattr(blocks, "decode_blocks", counting)
    result = run("decompress", damaged, "in/03.png", "in/stack.npy", "-o", tmp_path / "some", "--model", model)
    assert result.exit_code == 0, result.output
    assert decoded_counts == [[16, 16, 16, 6]]  # blocks 0, 2, 3, 4; not block 1
    assert sorted(p.name for p in (tmp_path / "some" / "in").iterdir()) == ["03.png", "stack.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "some" / "in" / "stack.npy"), np.load(folder / "stack.npy"))
    result = run("decompress", damaged, "in/20.png", "-o", tmp_path / "other", "--model", model)
    assert result.exit_code == 1 and "in/20.png" in result.output
    assert run("decompress", archive, "in/nothing.png", "-o", tmp_path / "x", "--model", model).exit_code == 1


def test_the_archive_is_the_same_for_any_number_of_threads(tmp_path, blocked_archive, tiny_models):
    """(Checked to fail: with blocks cut by the number of cores, -T 2 wrote other bytes.)"""
    folder, archive = blocked_archive
    model = tiny_models["logistic"]
    for threads in (2, 3):
        other = tmp_path / f"t{threads}.bb"
        assert run("compress", folder, "-o", other, "--model", model, "--block-images", 16, "-T", threads, "--no-fallback").exit_code == 0
        assert other.read_bytes() == archive.read_bytes()
    assert run("decompress", archive, "-o", tmp_path / "r", "--model", model, "-T", 2).exit_code == 0
    assert_same_files(folder, tmp_path / "r")


def test_files_read_by_the_worker_processes_make_the_same_archive(tmp_path, blocked_archive, tiny_models, monkeypatch):
    """With more than a reading job's files and more than one core, the image files are read in
    jobs by the worker processes (an array is read here, as with a cluster): the same archive as
    the files read one by one with -T 1."""
    from bbzip.cli import reading

    folder, archive = blocked_archive
    monkeypatch.setattr(reading, "JOB_FILES", 8)

    def not_here(*args):
        raise AssertionError("read one by one")

    monkeypatch.setattr(reading, "_read_here", not_here)
    other = tmp_path / "jobs.bb"
    result = run("compress", folder, "-o", other, "--model", tiny_models["logistic"], "--block-images", 16, "-T", 2,
                 "--no-fallback")
    assert result.exit_code == 0, result.output
    assert other.read_bytes() == archive.read_bytes()


def test_workers_that_keep_dying_are_one_line_and_no_archive(tmp_path, blocked_archive, tiny_models, monkeypatch):
    """A job's worker process dying on every try (models/scheduler.py retries it on fresh ones)
    ends compress with one line, exit 1, and no archive."""
    from concurrent.futures.process import BrokenProcessPool

    from bbzip.models import scheduler

    folder, _ = blocked_archive

    def dies(self, pool, job):
        raise BrokenProcessPool("a child process terminated abruptly")

    monkeypatch.setattr(scheduler.Lanes, "_in_worker", dies)
    out = tmp_path / "lost.bb"
    result = run("compress", folder, "-o", out, "--model", tiny_models["logistic"], "--block-images", 16, "-T", 2,
                 "--no-fallback")
    assert result.exit_code == 1 and "worker process ended abruptly 3 times" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_an_output_that_appears_while_compressing_is_not_overwritten(tmp_path, image_folder, tiny_models, monkeypatch):
    """Two compresses to one name, or a file created meanwhile: the later one fails, nothing is lost."""
    from bbzip.cli import coding

    out = tmp_path / "out.bb"
    original_build = coding.build

    def build_then_someone_writes(*args, **kwargs):
        result = original_build(*args, **kwargs)
        out.write_bytes(b"precious")
        return result

    monkeypatch.setattr(coding, "build", build_then_someone_writes)
    result = run("compress", image_folder, "-o", out, "--model", tiny_models["logistic"], "--no-fallback")
    assert result.exit_code == 1 and "appeared while compressing" in result.output
    assert out.read_bytes() == b"precious" and not list(tmp_path.glob(".out.bb.*"))


def test_a_name_with_a_backslash_is_refused_at_compress_time(tmp_path, grey_test_images):
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "a\\\\b.npy", grey_test_images[:2])
    result = run("compress", folder, "-o", tmp_path / "x.bb")
    assert result.exit_code == 1 and "backslash" in result.output and not (tmp_path / "x.bb").exists()


def test_permission_bits_and_modification_times_come_back(tmp_path, image_folder, tiny_models):
    private = image_folder / "03.png"
    private.chmod(0o600)
    os.utime(private, ns=(978_307_200_000_000_000, 978_307_200_123_456_789))
    archive = compress(tmp_path, [image_folder], tiny_models["logistic"])
    assert run("decompress", archive, "-o", tmp_path / "out", "--model", tiny_models["logistic"]).exit_code == 0
    restored = (tmp_path / "out" / "imgs" / "03.png").stat()
    assert stat.S_IMODE(restored.st_mode) == 0o600 and restored.st_mtime_ns == 978_307_200_000_000_000  # to the second
    exact = tmp_path / "exact.bb"
    assert run("compress", image_folder, "-o", exact, "--model", tiny_models["logistic"], "--exact-times").exit_code == 0
    assert run("decompress", exact, "-o", tmp_path / "exact", "--model", tiny_models["logistic"]).exit_code == 0
    assert (tmp_path / "exact" / "imgs" / "03.png").stat().st_mtime_ns == 978_307_200_123_456_789


def test_files_dated_before_1970_come_back_with_their_times(tmp_path):
    """A time before 1970 is negative; the header schema took it for a damaged entry, so such a
    file could not be compressed at all (compress's check refused its own archive)."""
    folder = tmp_path / "old"
    folder.mkdir()
    for name, seconds in (("1960.txt", -315_619_200), ("1969.txt", -1), ("2001.txt", 978_307_200)):
        (folder / name).write_text(name)
        os.utime(folder / name, ns=(seconds * 10**9, seconds * 10**9 + 500_000_000))
    archive = tmp_path / "old.bb"
    result = run("compress", folder, "-o", archive)
    assert result.exit_code == 0, result.output
    assert run("decompress", archive, "-o", tmp_path / "out").exit_code == 0
    for name, seconds in (("1960.txt", -315_619_200), ("1969.txt", -1), ("2001.txt", 978_307_200)):
        assert (tmp_path / "out" / "old" / name).stat().st_mtime_ns == seconds * 10**9  # to the second, rounded down


def test_a_failure_while_writing_leaves_no_file_of_the_archive(tmp_path, image_folder, tiny_models):
    """All or nothing: a clash found only when writing (a file where a folder must go) takes
    back the files already put in place."""
    archive = compress(tmp_path, [image_folder], tiny_models["logistic"])
    (tmp_path / "out" / "imgs").mkdir(parents=True)
    (tmp_path / "out" / "imgs" / "sub").write_bytes(b"in the way")
    result = run("decompress", archive, "-o", tmp_path / "out", "--model", tiny_models["logistic"])
    assert result.exit_code == 1 and result.output.startswith("bbzip: ")
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["imgs", "sub"]


def test_sigterm_while_compressing_leaves_nothing_behind(tmp_path):
    """Handled like Ctrl-C (exit 130): the partial archive is removed."""
    import signal
    import time

    source = Path(__file__).resolve().parents[1] / "samples" / "mnist-test.npz"
    process = subprocess.Popen([sys.executable, "-m", "bbzip", "compress", str(source), "-o", str(tmp_path / "m.bb")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(3)  # reading, choosing and coding 10,000 images takes several times longer
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr and list(tmp_path.iterdir()) == []


def test_symbolic_links_are_kept_as_links(tmp_path, image_folder, tiny_models):
    """As tar: links come back as links with their targets; a link to a file outside the folder
    is not copied in, one to a file inside is not taken twice (0.1: traceback / "given twice")."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not part of the folder")
    links = {"to-inside.png": "00.png", "to-outside.txt": str(outside), "to-folder": "sub", "dangling": "nowhere"}
    for name, target in links.items():
        os.symlink(target, image_folder / name)
    archive = compress(tmp_path, [image_folder], tiny_models["logistic"])
    result = run("decompress", archive, "-o", tmp_path / "out", "--model", tiny_models["logistic"])
    assert result.exit_code == 0, result.output
    for name, target in links.items():
        restored = tmp_path / "out" / "imgs" / name
        assert restored.is_symlink() and os.readlink(restored) == target
    assert_same_files(image_folder / "sub", tmp_path / "out" / "imgs")


def test_no_file_is_written_through_a_link_out_of_the_output_folder(tmp_path, image_folder, tiny_models):
    archive = compress(tmp_path, [image_folder], tiny_models["logistic"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(elsewhere, tmp_path / "out" / "imgs")
    result = run("decompress", archive, "-o", tmp_path / "out", "-f", "--model", tiny_models["logistic"])
    assert result.exit_code == 1 and "outside" in result.output
    assert list(elsewhere.iterdir()) == []


def test_output_flags_work_after_the_subcommand_and_training_arguments_are_bounded(tmp_path, image_folder, tiny_models):
    result = run("compress", image_folder, "-o", tmp_path / "a.bb", "--model", tiny_models["logistic"], "-q")
    assert result.exit_code == 0 and result.output == ""
    result = run("train-encoder", tiny_models["logistic"], "mnist", "-o", tmp_path / "x.safetensors", "--alpha", "2")
    assert result.exit_code == 2 and "alpha" in result.output.lower()
    result = run("train", "mnist", "-o", tmp_path / "x.safetensors", "--lr", "inf")
    assert result.exit_code == 2


@pytest.mark.parametrize("broken", ["model stream", "classic blob"])
def test_compress_fails_if_its_archive_would_not_decode_to_the_input(tmp_path, image_folder, tiny_models, monkeypatch, broken):
    """Compress decodes what it built before writing it: a decoder bug (here one pixel changed
    on the way back, after the checksums were made) gives exit 1 and no archive, not exit 0 and
    an archive that cannot be opened. (Without the check this test writes the archive, exit 0.)"""
    from bbzip.cli import entries
    from bbzip.models import stream

    if broken == "model stream":
        decode = stream.decode

        def wrong_decode(*args, **kwargs):
            symbols = decode(*args, **kwargs)
            symbols[0, 0] = 1 - symbols[0, 0] if symbols.max() <= 1 else (int(symbols[0, 0]) + 1) % 256
            return symbols

        monkeypatch.setattr(stream, "decode", wrong_decode)
    else:
        restore = entries.restore

        def wrong_restore(meta, feed, blobs, sink=None):
            fingerprint = restore(meta, feed, blobs, sink)
            return fingerprint.update(b"!") if meta.get("store") == "classic" else fingerprint

        monkeypatch.setattr(entries, "restore", wrong_restore)
        monkeypatch.setattr("bbzip.cli.coding.restore", wrong_restore)
    out = tmp_path / "out.bb"
    result = run("compress", image_folder, "-o", out, "--model", tiny_models["logistic"], "--no-fallback")
    assert result.exit_code == 1 and "would not decode" in result.output, result.output
    assert not out.exists() and list(tmp_path.iterdir()) == [image_folder]


def _run_with_stdout_closed(tmp_path, *args):
    """bbzip with a stdout pipe that nobody reads (its reader already gone, like `| head` done)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.run([sys.executable, "-m", "bbzip", *map(str, args)], stdout=write_end,
                                 stderr=subprocess.PIPE, cwd=tmp_path, timeout=120)
    finally:
        os.close(write_end)
    return process.returncode, process.stderr.decode()


def test_a_closed_pipe_stops_list_quietly_and_fails_compress_to_stdout(tmp_path, image_folder, tiny_models):
    """`bbzip list a.bb | head -1` ends quietly as `ls | head` does (141, no "Broken pipe");
    `bbzip compress ... -o - | head -c 100` does not report success: the archive did not get through."""
    archive = compress(tmp_path, [image_folder], tiny_models["logistic"])
    code, stderr = _run_with_stdout_closed(tmp_path, "list", archive)
    assert code == 141 and stderr == ""
    code, stderr = _run_with_stdout_closed(tmp_path, "compress", image_folder, "-o", "-", "--model", tiny_models["logistic"])
    assert code == 1 and stderr.strip() == "bbzip: the output closed before everything was written", stderr


def test_list_shows_how_each_entry_is_kept_and_what_it_costs(tmp_path, image_folder, tiny_models):
    (image_folder / "notes.txt").write_bytes(b"twelve bytes")
    Image.fromarray(np.zeros((40, 50, 3), dtype=np.uint8)).save(image_folder / "rgb.png")
    archive = compress(tmp_path, [image_folder], tiny_models["logistic"])
    lines = {line.split()[-1]: line.split() for line in run("list", archive).output.splitlines()[4:-1]}
    assert lines["imgs/notes.txt"][:2] == ["stored", "BYTES"] and int(lines["imgs/notes.txt"][-2]) > 0
    assert lines["imgs/rgb.png"][0].startswith("classic/") and lines["imgs/rgb.png"][2] == "50x40"
    assert lines["imgs/00.png"][0] == "model" and lines["imgs/00.png"][-3:-1] == ["1", "0"]
    total = run("list", archive).output.splitlines()[-1]
    assert total.startswith("total:") and "17 model images" in total and "restore to 12 bytes" in total


def test_messages_are_not_wrapped_when_stderr_is_not_a_terminal(tmp_path, grey_test_images, tiny_models):
    folder = tmp_path / ("a-long-folder-name-" * 6)
    folder.mkdir()
    np.save(folder / "x.npy", grey_test_images[:3])
    process = subprocess.run([sys.executable, "-m", "bbzip", "compress", folder, "-o", tmp_path / "a.bb", "--model",
                              tiny_models["logistic"]], capture_output=True, cwd=tmp_path)
    process = subprocess.run([sys.executable, "-m", "bbzip", "decompress", tmp_path / "a.bb", "-o", folder / "out", "--model",
                              tiny_models["logistic"]], capture_output=True, cwd=tmp_path)
    assert process.returncode == 0 and len(process.stderr.decode().splitlines()) == 1, process.stderr


def test_progress_moves_while_reading_and_verifying(tmp_path, image_folder, tiny_models, monkeypatch):
    """The bars (shown on a terminal) cover every kind of work: listing the files (counted as
    they are found, before their number is known), reading and re-encoding them, by bytes and
    naming the file at work (a big classic image used to sit at 0/0), coding and the check that
    the archive decodes."""
    import contextlib

    from bbzip.cli.console import Output

    bars = {}

    @contextlib.contextmanager
    def recording_bar(self, description, total, unit="images"):
        steps = bars.setdefault(description, {"total": total, "done": 0, "status": [], "unit": unit})

        def advance(n=1, **fields):
            steps["done"] += n
            steps["status"].append(fields.get("status", ""))

        yield advance

    monkeypatch.setattr(Output, "bar", recording_bar)
    Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8)).save(image_folder / "big.png")
    compress(tmp_path, [image_folder], tiny_models["logistic"])
    files = sum(1 for p in image_folder.rglob("*") if p.is_file())
    assert bars["listing"] == {"total": None, "done": files, "status": [""], "unit": "files"}
    reading = bars["reading"]
    assert reading["done"] == reading["total"] == sum(p.stat().st_size for p in image_folder.rglob("*") if p.is_file())
    assert "imgs/big.png" in reading["status"] and reading["unit"] == "bytes"
    assert bars["compressing"]["done"] == bars["verifying"]["done"] == bars["compressing"]["total"] == 17
    assert bars["compressing"]["unit"] == bars["verifying"]["unit"] == "images"


def test_the_bars_show_the_rate_in_their_unit():
    from types import SimpleNamespace

    from bbzip.cli.console import _Rate

    task = SimpleNamespace(finished_speed=None, speed=2_500_000.0)
    assert str(_Rate("bytes").render(task)) == "2.5 MB/s"
    assert str(_Rate("tiles").render(SimpleNamespace(finished_speed=1234.4, speed=None))) == "1,234 tiles/s"
    assert str(_Rate("images").render(SimpleNamespace(finished_speed=None, speed=None))) == ""


KILL_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
from bbzip.models import files
from bbzip.cli.main import main
real_replace, real_link = os.replace, os.link
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
os.replace = os.link = killed  # the moment compress puts its archive, or decompress a file, in place
sys.argv = ["bbzip", *sys.argv[1:]]
main()
"""


def test_what_a_killed_bbzip_left_is_removed_by_the_next_one(tmp_path, image_folder, tiny_models):
    """SIGKILL cannot be handled: a killed compress leaves its .part file, a killed decompress its
    staging folder. The next bbzip writing to the same place removes them (only those of dead
    processes of this machine: a running bbzip's files, or anyone else's, stay)."""
    model = tiny_models["logistic"]
    archive = tmp_path / "a.bb"
    killed = subprocess.run([sys.executable, "-c", KILL_WHILE_WRITING, "compress", image_folder, "-o", archive,
                             "--model", model], cwd=Path(__file__).parents[1], capture_output=True)
    assert killed.returncode == -9
    part = [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(part) == 1 and part[0].startswith(".a.bb.bbzip-") and not archive.exists()
    running = tmp_path / (leftover_prefix("a.bb") + "x.part")  # this process's: alive
    running.write_bytes(b"")
    assert run("compress", image_folder, "-o", archive, "--model", model).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.bb", "imgs", running.name])

    out = tmp_path / "restored"
    killed = subprocess.run([sys.executable, "-c", KILL_WHILE_WRITING, "decompress", archive, "-o", out, "--model", model],
                            cwd=Path(__file__).parents[1], capture_output=True)
    assert killed.returncode == -9 and [p.name[:7] for p in out.iterdir() if p.is_file() or any(p.iterdir())] == [".bbzip-"]
    assert run("decompress", archive, "-o", out, "--model", model).exit_code == 0
    assert [p.name for p in out.iterdir()] == ["imgs"]


def test_decompress_writes_each_file_before_blocks_far_ahead_are_decoded(tmp_path, grey_test_images, tiny_models,
                                                                        monkeypatch):
    """What bounds decompress's memory: 60 one-image files in blocks of 4 (15 blocks), 2 cores;
    every file is staged (written to disk) as soon as its images are decoded, before any block
    more than the window (two per core) past its own is taken; the files come out the same.
    (Checked to fail with every block decoded before the first file is staged.)"""
    from bbzip.cli import placing
    from bbzip.models import api

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(60):
        Image.fromarray(grey_test_images[i]).save(folder / f"{i:02d}.png")
    archive = tmp_path / "small-blocks.bb"
    model = tiny_models["logistic"]
    assert run("compress", folder, "-o", archive, "--model", model, "--block-images", 4, "--no-fallback").exit_code == 0
    taken, staged_at = [0], []
    original_message, original_add = api._message, placing.Staging.add

    def counting(block):
        taken[0] += 1
        return original_message(block)

    def recording_add(self, restored):
        staged_at.append((int(Path(restored.name).stem), taken[0]))
        return original_add(self, restored)

    monkeypatch.setattr(api, "_message", counting)
    monkeypatch.setattr(placing.Staging, "add", recording_add)
    result = run("decompress", archive, "-o", tmp_path / "out", "--model", model, "-T", 2)
    assert result.exit_code == 0, result.output
    assert_same_files(folder, tmp_path / "out")
    assert len(staged_at) == 60 and taken[0] == 15
    for image, at in staged_at:
        assert at <= image // 4 + 1 + 4, (image, at)
    assert staged_at[0][1] < 15


def test_decompress_writes_a_large_array_a_block_at_a_time(tmp_path, grey_test_images, tiny_models, monkeypatch):
    """What bounds decompress's memory within one file: an array of 60 images in blocks of 4 is
    written as its blocks decode, so when the last block's message is read the file being
    staged already holds the images of the blocks before the window; it comes out byte for
    byte. (Checked to fail when the array is decoded whole before it is written.)"""
    from bbzip.models import api

    source = tmp_path / "in" / "stack.npy"
    source.parent.mkdir()
    np.save(source, grey_test_images[:60])
    archive, out = tmp_path / "a.bb", tmp_path / "out"
    model = tiny_models["logistic"]
    assert run("compress", source, "-o", archive, "--model", model, "--block-images", 4, "--no-fallback").exit_code == 0
    staged_sizes, original_message = [], api._message

    def recording(block):
        staged = [f for folder in out.glob(leftover_prefix() + "*") for f in folder.iterdir()]
        staged_sizes.append(staged[0].stat().st_size if staged else 0)
        return original_message(block)

    monkeypatch.setattr(api, "_message", recording)
    for threads in (1, 2):
        staged_sizes.clear()
        result = run("decompress", archive, "-o", out, "--model", model, "-T", threads, "-f")
        assert result.exit_code == 0, result.output
        assert (out / "stack.npy").read_bytes() == source.read_bytes()
        assert len(staged_sizes) == 15 and staged_sizes[-1] >= 8 * 4 * 28 * 28, (threads, staged_sizes)


def test_stored_files_bytes_are_not_held_until_the_archive_is_written(tmp_path, monkeypatch):
    """What bounds compress's memory for a folder of files kept as bytes: each file's xz goes to
    a temporary file when it is read (cli/spool.py), so when the archive starts to be written
    Python holds far less than the folder. (Checked to fail when the blobs are kept in memory:
    then it holds all 16 MiB.)"""
    import tracemalloc

    from bbzip.cli import coding

    folder = tmp_path / "files"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for number in range(16):  # incompressible: xz keeps each at its 1 MiB
        (folder / f"{number}.bin").write_bytes(rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes())
    build, held = coding.build, []

    def measured_build(*args, **kwargs):
        held.append(tracemalloc.get_traced_memory()[0])
        return build(*args, **kwargs)

    monkeypatch.setattr(coding, "build", measured_build)
    tracemalloc.start()
    try:
        result = run("compress", folder, "-o", tmp_path / "a.bb")
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert held and held[0] < 4 << 20, held
    assert run("decompress", tmp_path / "a.bb", "-o", tmp_path / "out").exit_code == 0
    assert all((tmp_path / "out" / "files" / p.name).read_bytes() == p.read_bytes() for p in folder.iterdir())


def test_compare_shows_png_and_jpeg_xl_files_beside_the_archive(tmp_path, grey_test_images):
    """--compare: per folder of image files and per array, the bpd of the same images as PNG
    files (Pillow, optimised, each in its own mode) and as JPEG XL files, beside bbzip's share; the
    last row is the whole archive's real size."""
    import io

    from bbzip.cli import jpegxl

    folder = tmp_path / "in"
    (folder / "bits").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(grey_test_images[i] >= 128).save(folder / "bits" / f"{i}.png")  # mode "1"
    np.save(folder / "stack.npy", grey_test_images[3:9])
    archive = tmp_path / "x.bb"
    result = run("compress", folder, "-o", archive, "--compare")
    assert result.exit_code == 0, result.output

    def png(image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return len(buffer.getvalue())

    bits = [Image.fromarray(grey_test_images[i] >= 128) for i in range(3)]
    greys = [Image.fromarray(pixels) for pixels in grey_test_images[3:9]]
    jxl = [len(jpegxl.encode_lossless("L", 28, 28, image.convert("L").tobytes())) for image in bits + greys]
    rows = {line.split()[0]: line.split()[1:5] for line in result.output.splitlines() if line.startswith(("in/", "all "))}
    assert rows["in/bits/"][0] == "3" and rows["in/stack.npy"][0] == "6" and rows["all"][0] == "9"
    assert rows["in/bits/"][2] == f"{8 * sum(map(png, bits)) / (3 * 784):.4f}"
    assert rows["in/stack.npy"][2] == f"{8 * sum(map(png, greys)) / (6 * 784):.4f}"
    assert rows["in/stack.npy"][3] == f"{8 * sum(jxl[3:]) / (6 * 784):.4f}"
    assert rows["all"][1] == f"{8 * archive.stat().st_size / (9 * 784):.4f}"


@pytest.mark.parametrize("command", ["compress", "decompress"])
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_an_output_path_that_is_not_a_regular_file_is_never_replaced(tmp_path, grey_test_images, tiny_models, command, kind):
    """0.1: `compress g.npy -o mynull -f` turned a device node into a regular file (the rename
    into place replaces whatever is there). bbzip writes regular files only, even with -f."""
    np.save(tmp_path / "g.npy", grey_test_images[:3])
    if command == "compress":
        target = tmp_path / "out.bb"
        args = ["compress", tmp_path / "g.npy", "-o", target, "--model", tiny_models["logistic"], "--no-fallback", "-f"]
    else:
        archive = compress(tmp_path, [tmp_path / "g.npy"], tiny_models["logistic"])
        (tmp_path / "restored").mkdir()
        target = tmp_path / "restored" / "g.npy"
        args = ["decompress", archive, "-o", tmp_path / "restored", "--model", tiny_models["logistic"], "-f"]
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    result = run(*args)
    assert result.exit_code == 1 and "not a regular file" in result.output, result.output
    assert stat.S_ISFIFO(os.lstat(target).st_mode) if kind == "fifo" else target.is_dir()


def test_a_named_pipe_inside_a_folder_is_left_out_with_a_warning(tmp_path, grey_test_images, tiny_models):
    """0.1 opened it and waited for ever for a writer. Special files in a folder are never
    opened: compress leaves them out, says so, and codes the rest."""
    folder = tmp_path / "d"
    folder.mkdir()
    np.save(folder / "a.npy", grey_test_images[:3])
    os.mkfifo(folder / "p.png")
    archive = tmp_path / "x.bb"
    process = subprocess.run([sys.executable, "-m", "bbzip", "compress", str(folder), "-o", str(archive), "--model",
                              str(tiny_models["logistic"]), "--no-fallback", "-T", "1"], capture_output=True, timeout=120)
    assert process.returncode == 0, process.stderr
    assert b"warning: left out 1 special file" in process.stderr and b"p.png" in process.stderr
    listing = run("list", archive).output
    assert "d/a.npy" in listing and "p.png" not in listing


def test_two_inputs_with_one_name_are_refused(tmp_path, grey_test_images, tiny_models):
    """Both would decompress to x.png: refused before anything is read (and found by counting,
    not by comparing every name with every other: 10,000 files took 1.5 s to check)."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(grey_test_images[0]).save(tmp_path / folder / "x.png")
    result = run("compress", tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "-o", tmp_path / "x.bb",
                 "--model", tiny_models["logistic"])
    assert result.exit_code == 1 and "x.png: given twice" in result.output


def test_inputs_given_out_of_order_are_written_in_the_order_of_their_names(tmp_path):
    """An archive's names in sorted order are checked as they are read, holding nothing a name
    (cli/header_schema.py); compress writes them so whatever order its inputs were given in."""
    from bbzip.cli.archive import read_archive

    for folder in ("b", "a"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "notes.txt").write_text(f"in {folder}\n")
    (tmp_path / "a-z.txt").write_text("beside\n")
    inputs = [str(tmp_path / name) for name in ("b", "a-z.txt", "a")]
    result = CliRunner().invoke(cli, ["-q", "compress", *inputs, "-o", str(tmp_path / "x.bb")])
    assert result.exit_code == 0, result.output
    assert list(read_archive((tmp_path / "x.bb").read_bytes()).names) == ["a-z.txt", "a/notes.txt", "b/notes.txt"]
