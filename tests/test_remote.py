"""Archives and inputs at fsspec URLs (cli/remote.py), on fsspec's in-memory and local file systems."""
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

from .test_cli import assert_same_files, run

fsspec = pytest.importorskip("fsspec", reason="URLs need the remote extra (fsspec)")


@pytest.fixture
def memory():
    """fsspec's in-memory file system, emptied after the test (it lives as long as the process)."""
    fs = fsspec.filesystem("memory")
    yield fs
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]


def test_an_archive_at_a_url_is_written_checked_listed_and_read_back(tmp_path, image_folder, tiny_models, memory):
    model = tiny_models["logistic"]
    url = "memory://bb/out.bb"
    result = run("compress", image_folder, "-o", url, "--model", model, "--no-fallback")
    assert result.exit_code == 0, result.output
    local = tmp_path / "local.bb"
    assert run("compress", image_folder, "-o", local, "--model", model, "--no-fallback").exit_code == 0
    assert memory.cat_file("/bb/out.bb") == local.read_bytes()  # the same archive, uploaded once checked
    listing = run("list", url)
    assert listing.exit_code == 0 and f"({local.stat().st_size} bytes)" in listing.output
    assert run("test", url, "--model", model).exit_code == 0
    result = run("decompress", url, "-o", tmp_path / "restored", "--model", model)
    assert result.exit_code == 0, result.output
    assert_same_files(image_folder, tmp_path / "restored")
    # file:// is the local path it names
    result = run("decompress", local.as_uri(), "-o", tmp_path / "again", "--model", model)
    assert result.exit_code == 0, result.output
    assert_same_files(image_folder, tmp_path / "again")


def test_an_object_at_the_url_is_replaced_only_with_force(tmp_path, image_folder, tiny_models, memory):
    model = tiny_models["logistic"]
    memory.pipe_file("/bb/taken.bb", b"somebody's data")
    result = run("compress", image_folder, "-o", "memory://bb/taken.bb", "--model", model, "--no-fallback")
    assert result.exit_code == 1 and "already exists (use -f" in result.output
    assert memory.cat_file("/bb/taken.bb") == b"somebody's data"
    memory.mkdir("/bb/folder.bb")
    memory.pipe_file("/bb/folder.bb/inside", b"x")
    result = run("compress", image_folder, "-o", "memory://bb/folder.bb", "--model", model, "--no-fallback", "-f")
    assert result.exit_code == 1 and "not a file" in result.output
    result = run("compress", image_folder, "-o", "memory://bb/taken.bb", "--model", model, "--no-fallback", "-f")
    assert result.exit_code == 0 and memory.cat_file("/bb/taken.bb")[:5] != b"someb"


def test_one_entry_of_an_archive_at_a_url_reads_its_own_parts_only(tmp_path, grey_test_images, tiny_models, memory,
                                                                  monkeypatch):
    """`decompress URL NAME` fetches the table and NAME's parts: a few kilobytes of an archive
    whose other entry is half a megabyte of stored bytes."""
    from bbzip.models import files

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(grey_test_images[0]).save(folder / "small.png")
    (folder / "noise.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 1 << 19, dtype=np.uint8).tobytes())
    model = tiny_models["logistic"]
    url = "memory://bb/mixed.bb"
    assert run("compress", folder, "-o", url, "--model", model, "--no-fallback").exit_code == 0
    read = []
    pread = files.LockedStream.pread
    monkeypatch.setattr(files.LockedStream, "pread", lambda self, length, offset: read.append(length) or pread(self, length, offset))
    result = run("decompress", url, "in/small.png", "-o", tmp_path / "one", "--model", model)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "one" / "in" / "small.png")), grey_test_images[0])
    assert 0 < sum(read) < 20_000 < memory.size("/bb/mixed.bb")


@pytest.mark.parametrize("url, message", [("nosuchstore://x/a.bb", "Protocol not known"), ("memory://bb/none.bb", "no such file")])
def test_a_url_that_cannot_be_read_is_one_line(url, message, memory):
    """An unknown store (or one whose package is missing: fsspec names it) or a missing object."""
    result = run("list", url)
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1


def _upload(memory, folder, prefix):
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        memory.pipe_file(f"{prefix}/{path.relative_to(folder.parent).as_posix()}", path.read_bytes())


def test_inputs_at_urls_are_compressed_under_the_names_a_local_folder_gets(tmp_path, image_folder, tiny_models, memory):
    """A folder and a file at URLs: fetched, compressed as local files would be (names, pixels,
    the store's modification times), and nothing of them left behind."""
    model = tiny_models["logistic"]
    _upload(memory, image_folder, "/in")
    memory.store["/in/imgs/sub/odd-size.png"].modified = datetime.fromtimestamp(1_500_000_000, timezone.utc)
    out = tmp_path / "from-urls.bb"
    result = run("compress", "memory://in/imgs", "memory://in/imgs/03.png", "-o", out, "--model", model, "--no-fallback")
    assert result.exit_code == 0, result.output
    result = run("decompress", out, "-o", tmp_path / "restored", "--model", model)
    assert result.exit_code == 0, result.output
    assert_same_files(image_folder, tmp_path / "restored")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "restored" / "03.png")),
                                  np.asarray(Image.open(image_folder / "03.png")))
    assert int((tmp_path / "restored" / "imgs" / "sub" / "odd-size.png").stat().st_mtime) == 1_500_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["from-urls.bb", "imgs", "restored"]  # no fetched files left


def test_an_input_url_holding_an_unsafe_name_is_refused_before_anything_is_fetched(tmp_path, tiny_models, memory):
    memory.pipe_file("/in/imgs/a.png", b"not read")
    memory.pipe_file("/in/imgs/../evil.png", b"not read")
    result = run("compress", "memory://in/imgs", "-o", tmp_path / "x.bb", "--model", tiny_models["logistic"])
    assert result.exit_code == 1 and "cannot be restored safely" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.bb").exists()
    assert run("compress", "memory://in/none", "-o", tmp_path / "x.bb").exit_code == 1


def test_a_store_that_fails_while_an_archive_is_read_is_one_line_and_nothing_written(tmp_path, image_folder,
                                                                                    tiny_models, memory, monkeypatch):
    from bbzip.models import files

    model = tiny_models["logistic"]
    assert run("compress", image_folder, "-o", "memory://bb/a.bb", "--model", model, "--no-fallback").exit_code == 0
    calls = []
    pread = files.LockedStream.pread

    def failing(self, length, offset):
        calls.append(offset)
        if len(calls) > 3:  # the framing and the table read, then the store goes away
            raise ConnectionResetError(104, "Connection reset by peer")
        return pread(self, length, offset)

    monkeypatch.setattr(files.LockedStream, "pread", failing)
    result = run("decompress", "memory://bb/a.bb", "-o", tmp_path / "restored", "--model", model)
    assert result.exit_code == 1 and "Connection reset by peer" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not list((tmp_path / "restored").rglob("*.png"))
