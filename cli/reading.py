"""Reading the inputs of a compress: every file becomes an entry (cli/entries.py), in order.

Files are read many a job by the lanes of models/scheduler.py: on the local cores (this process
and its worker processes, which start as the first jobs go out and code with the model later),
or on a Dask cluster's workers (`--cluster`). Decoding each image, re-encoding those the model
does not take, xz-compressing stored files and transcoding JPEG files is the work of compress
outside the model: one core alone would set the pace for the others. A job names each file by
its path and by the size and modification time the client saw; a worker that sees the same
file there (a shared file system) reads it itself, else it hands the file back unread. After
the first job that comes back with a file unread, the client reads each file's bytes and sends
them with its job instead (the workers do not see the input files), and reads the files handed
back itself. Arrays (.npy, .npz) and links are read here, by jobs run as they are handed out:
what is read of them first is a header (an array's images are read as they are needed, from
the file here). The inputs are listed as the jobs go out: what is held is the window's jobs,
whatever the number of files.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from bbzip.models import scheduler
from bbzip.models.pixels import binary_scale

from .entries import input_fingerprint, read_content, read_entry, read_from_bytes, with_attributes
from .entry_kind import Entry
from .entry_log import EntryLog
from .fingerprint import Finished
from .inputs import Input, Inputs
from .remote import StoredObject
from .sources import SpooledImages

JOB_FILES = 64  # files a reading job holds at most
JOB_BYTES = 16 << 20  # and file bytes, unless one file is larger


def read_inputs(out, inputs: Inputs, fits, exact_times: bool, spool, lanes: int) -> EntryLog:
    """The entry of every input (cli/inputs.py), in order, its blobs and pixels in `spool` and
    itself in an EntryLog there (cli/entry_log.py); the bar moves by bytes and names the file at
    work, so one big image does not look like a hang. `lanes`: the local cores, or the jobs a
    cluster keeps in flight."""
    in_jobs = scheduler.elsewhere() or (lanes > 1 and inputs.count > JOB_FILES)
    entries = EntryLog(spool)
    with out.bar("reading", inputs.size, "bytes") as advance:
        if in_jobs:
            read = _read_in_jobs(inputs, fits, exact_times, lanes, advance)
        else:
            read = _read_here(inputs, fits, exact_times, advance)
        for entry in read:
            entries.append(set_aside(entry, spool))
    return entries


def set_aside(entry: Entry, spool) -> Entry:
    """The entry as compress keeps it until the archive is written: its blobs and the images it
    holds in memory (an image file's pixels, an array read whole) in `spool`, read back by each
    pass that needs them (cli/sources.py: SpooledImages), and its fingerprint taken now and
    kept as its two values (a hash's running state is a few hundred bytes a file)."""
    fingerprint = input_fingerprint(entry)
    fields = {"blobs": [spool.add(blob) for blob in entry.blobs], "fingerprint": Finished(fingerprint.sha256, fingerprint.crc32)}
    if isinstance(entry.items, np.ndarray) and len(entry.items):
        fields["items"] = SpooledImages(spool.add(np.ascontiguousarray(entry.items).reshape(-1)), entry.items.shape,
                                        binary_scale(entry.items))
    return entry.changed(**fields)


def _read_here(inputs, fits, exact_times, advance):
    for found in inputs:
        advance(0, status=found.name)
        yield read_entry(found.name, found.path, fits, exact_times)
        advance(found.status.st_size, status="")


class _Files:
    """How the files are sent to the workers: by path until a worker does not see one."""

    def __init__(self):
        self.by_path = True


def _read_in_jobs(inputs, fits, exact_times, lanes: int, advance):
    """Each input's entry in order: those read from their bytes by the lanes' jobs, arrays and
    links by jobs run here as they are handed out."""
    files = _Files()
    handed_out = deque()  # (run, here) of each job whose entries have not come back: a window's

    def jobs():
        for run, here in _runs(inputs):
            handed_out.append((run, here))
            yield _job(run, here, files, fits, exact_times)

    done = 0  # files read, shown beside the bytes: results come back a job (many files) at a time
    # (not in this process too: it keeps each entry as it comes back, work enough of its own)
    results = scheduler.run_in_order(None, jobs(), lanes, on_images=lambda n: advance(n, status=f"{done:,} files"),
                                     workers_only=True)
    for read in results:
        run, here = handed_out.popleft()
        for found, entry in zip(run, read, strict=True):
            done += 1
            if entry is False:  # a worker did not see this file as it was listed: from now on, bytes
                files.by_path = False
                entry = read_entry(found.name, found.path, fits, exact_times)
            elif not here:
                entry = with_attributes(entry, found.status, exact_times)
            yield entry


def _runs(inputs):
    """(run, here) of each job: consecutive inputs alike in where they are read (here: an array
    or a link; else from their bytes), up to JOB_FILES of them and JOB_BYTES of bytes."""
    run, run_bytes, run_here = [], 0, False
    for found in inputs:
        here, size = not read_from_bytes(found.path, found.status), found.status.st_size
        if run and (here != run_here or len(run) == JOB_FILES or run_bytes + size > JOB_BYTES):
            yield run, run_here
            run, run_bytes = [], 0
        run.append(found)
        run_bytes, run_here = run_bytes + size, here
    if run:
        yield run, run_here


def _job(run: list[Input], here: bool, files: _Files, fits, exact_times: bool) -> scheduler.Job:
    """A job reading the inputs of `run`: here, or by a lane by path or with their bytes."""
    size = sum(found.status.st_size for found in run)
    if here:
        return scheduler.Job(read_entries, ([(found.name, found.path) for found in run], fits, exact_times), size,
                             here=True)
    paths = [found.path for found in run]
    sources = paths if files.by_path else _contents(paths)
    listed = [(found.name, source, found.status.st_size, found.status.st_mtime_ns) for found, source in zip(run, sources)]
    return scheduler.Job(read_files, (listed, fits), size)


def read_entries(model, listed, fits, exact_times: bool, on_images=None) -> list:
    """A job run here: the entry of each (name, path) in `listed` (an array, a link)."""
    return [read_entry(name, path, fits, exact_times) for name, path in listed]


def _contents(paths: list) -> list[bytes]:
    """Each file's bytes; the objects of one store (cli/remote.py: StoredObject) fetched in one
    call, side by side where the store can (s3fs, gcsfs), not one round trip at a time."""
    stores = {id(path.fs): path.fs for path in paths if isinstance(path, StoredObject)}
    fetched = {}
    for key, fs in stores.items():
        wanted = [path.path for path in paths if isinstance(path, StoredObject) and path.fs is fs]
        fetched.update({(key, name): raw for name, raw in fs.cat(wanted).items()})
    return [fetched[id(path.fs), path.path] if isinstance(path, StoredObject) else path.read_bytes() for path in paths]


def read_files(model, listed, fits, on_images=None) -> list:
    """A job: the entry of each (name, path or bytes, size, mtime_ns) in `listed`, without its
    file attributes; False for a path not seen here with that size and modification time. A
    path is a Path, or an object at a URL (cli/remote.py: StoredObject, as listed)."""
    return [_read_one(name, source, size, mtime_ns, fits) for name, source, size, mtime_ns in listed]


def _read_one(name: str, source, size: int, mtime_ns: int, fits):
    if isinstance(source, bytes):
        return read_content(name, source, fits)
    try:
        status = source.stat()
        if (status.st_size, status.st_mtime_ns) != (size, mtime_ns):
            return False
        raw = source.read_bytes()
    except OSError:
        return False
    return read_content(name, raw, fits) if len(raw) == size else False
