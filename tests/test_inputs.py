"""Listing what compress reads: in the order of the archive's names, as it is read, holding a
run of names whatever a folder's size (cli/inputs.py, cli/sorted_runs.py)."""
import tempfile
import tracemalloc

import pytest
from click.testing import CliRunner

from bbzip.cli import inputs, reading, sorted_runs
from bbzip.cli.console import Output
from bbzip.cli.errors import BBZipError
from bbzip.cli.inputs import Inputs
from bbzip.cli.main import cli
from bbzip.cli.spool import Spool
from bbzip.models.coder_choice import fits_a_default


class Counted(str):
    """A string that counts how many of its kind are alive."""

    alive = most = 0

    def __new__(cls, text):
        Counted.alive += 1
        Counted.most = max(Counted.most, Counted.alive)
        return super().__new__(cls, text)

    def __del__(self):
        Counted.alive -= 1


def test_strings_are_sorted_holding_a_run_of_them():
    """A run sorted at a time, the runs merged from a temporary file: the strings given are let
    go a run at a time. (Checked to fail with the strings sorted whole: all 500 alive.)"""
    texts = [f"{number * 7919 % 500:03d}{suffix}" for number, suffix in
             zip(range(500), ["", "/", ".x", "é", "\udcff", "-2", "a/b"] * 100)]
    Counted.alive = Counted.most = 0
    got = list(sorted_runs.sorted_strings((Counted(text) for text in texts), run=16))
    assert got == sorted(texts)
    assert Counted.most <= 17


def test_a_folder_is_listed_in_the_order_of_its_names(tmp_path, monkeypatch):
    """A subfolder `d` is walked where `d/` sorts: after `d-2` and `d.txt`, before `d0`; runs of
    two names make every folder here merge its runs. (Checked to fail with each folder walked
    where its bare name sorts.)"""
    monkeypatch.setattr(sorted_runs, "RUN", 2)
    top = tmp_path / "top"
    names = ["d-2", "d.txt", "d/x", "d/y/z", "d/y-", "d0", "e", "é", "Z", "d/y/a b"]
    for name in names:
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_bytes(name.encode())
    listed = Inputs([str(top)])
    assert [found.name for found in listed] == sorted(f"top/{name}" for name in names)
    assert (listed.count, listed.size) == (len(names), sum(len(name.encode()) for name in names))
    assert all(found.path.read_bytes() == found.name.removeprefix("top/").encode() for found in listed)


def test_a_large_folder_is_listed_holding_a_run_of_its_names(tmp_path, monkeypatch):
    """Neither listing the folder nor making its Inputs holds its names whole. (Checked to fail
    with the folder's names gathered in a list before they are sorted: 420 KB.)"""
    monkeypatch.setattr(sorted_runs, "RUN", 256)
    monkeypatch.setattr(sorted_runs, "READ", 1024)
    folder = tmp_path / "many"
    folder.mkdir()
    count = 4000
    for number in range(count):
        (folder / f"{number * 7919 % count:05d}-an-image-of-a-long-name.png").touch()
    tracemalloc.start()
    try:
        listed = Inputs([str(folder)])
        taken, in_order, previous = 0, True, ""
        for found in listed:
            taken, in_order, previous = taken + 1, in_order and previous < found.name, found.name
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert in_order and taken == count
    assert peak < 40 * count


def test_a_file_and_a_folder_of_one_name_are_refused_before_anything_is_written(tmp_path):
    """`x/a` (a file) and `y/a/` (a folder) would both decompress as `a`: refused as the inputs
    are listed (the archive's check refused it as an internal error). (Checked to fail without
    the refusal.)"""
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a").write_bytes(b"a file")
    (tmp_path / "y" / "a").mkdir(parents=True)
    (tmp_path / "y" / "a" / "b.txt").write_bytes(b"in a folder")
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "x" / "a"), str(tmp_path / "y" / "a"),
                                      "-o", str(tmp_path / "o.bb")])
    assert result.exit_code == 1 and "a: both a file and a folder among the inputs" in result.output
    assert not (tmp_path / "o.bb").exists()


def test_the_listing_moves_its_bar_a_few_thousand_files_at_a_time(tmp_path, monkeypatch):
    """A move of the bar a file was about a second a million files; the count comes out whole."""
    monkeypatch.setattr(inputs, "LISTED_STEP", 3)
    (tmp_path / "in").mkdir()
    for number in range(10):
        (tmp_path / "in" / f"{number}.txt").write_bytes(b"x")
    moves = []
    listed = Inputs([str(tmp_path / "in")], moves.append)
    assert moves == [3, 3, 3, 1] and listed.count == 10


def test_an_empty_folder_among_the_inputs_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "f.txt").write_bytes(b"x")
    with pytest.raises(BBZipError, match="folder holds no files"):
        Inputs([str(tmp_path / "f.txt"), str(tmp_path / "empty")])


class CountingInputs:
    """Inputs that count how many of them have been taken."""

    def __init__(self, listed):
        self.listed, self.count, self.size, self.taken = listed, listed.count, listed.size, 0

    def __iter__(self):
        for found in self.listed:
            self.taken += 1
            yield found


def test_inputs_read_in_jobs_are_listed_as_the_jobs_go_out(tmp_path, monkeypatch):
    """The first entry comes back when a window of jobs has been listed, not every file.
    (Checked to fail with the inputs listed whole first: 2,000 taken.)"""
    (tmp_path / "in").mkdir()
    count = 2000
    for number in range(count):
        (tmp_path / "in" / f"{number:04d}.txt").write_bytes(b"%d" % number)
    listed = CountingInputs(Inputs([str(tmp_path / "in")]))
    monkeypatch.setattr(reading, "JOB_FILES", 8)
    taken_at_first = []
    set_aside = reading.set_aside
    monkeypatch.setattr(reading, "set_aside",
                        lambda entry, spool: taken_at_first.append(listed.taken) or set_aside(entry, spool))
    with tempfile.TemporaryFile(dir=tmp_path) as spooled:
        entries = reading.read_inputs(Output(quiet=True), listed, fits_a_default(), False, Spool(spooled), 2)
        assert [entry.name for entry in entries] == [f"in/{number:04d}.txt" for number in range(count)]
    assert taken_at_first[0] <= 8 * 8  # the window: 2 jobs a lane, the next job's first file


def test_a_special_file_is_counted_not_listed(tmp_path):
    import os

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes(b"a")
    os.mkfifo(tmp_path / "in" / "p")
    listed = inputs.Inputs([str(tmp_path / "in")])
    assert [found.name for found in listed] == ["in/a.txt"]
    assert (listed.skipped, listed.first_skipped) == (1, tmp_path / "in" / "p")
