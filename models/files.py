"""File helpers shared by trained and frozen model files (no torch here)."""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import socket
import tempfile
import threading
from pathlib import Path


class ModelFileError(Exception):
    """A model file is missing, not a bbzip model, or does not match its recorded sha256."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Temporary files and folders carry this machine and process in their names: a process killed
# outright (SIGKILL, power loss) cannot clean up, so the next bbzip that writes in the same
# place removes what dead processes of this machine left there, and nothing else.
_LEFTOVER_TAG = f"bbzip-{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]}-"
_LEFTOVER = re.compile(r"\.(?:.+\.)?bbzip-([0-9a-f]{8})-([0-9]+)\.[^/]*")


def leftover_prefix(name: str = "") -> str:
    """The prefix of this process's temporary names next to a file called `name`."""
    return f".{name}{'.' if name else ''}{_LEFTOVER_TAG}{os.getpid()}."


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary files and folders that bbzip processes of this machine, no longer
    running, left in `folder`; returns them."""
    removed = []
    host = _LEFTOVER_TAG.split("-")[1]
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _LEFTOVER.fullmatch(name)
        if not match or match.group(1) != host or _running(int(match.group(2))):
            continue
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a pid we can ask about: leave it
    return True


def atomic_write(path: Path, write, exclusive: bool = False) -> None:
    """Call write(temporary path) next to `path`, then put it in place in one step, with the
    usual file mode. `exclusive`: never replace an existing file (a hard link fails with
    FileExistsError if the name exists, even one that appeared while `write` ran)."""
    path = Path(path)
    remove_leftovers(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=leftover_prefix(path.name), suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


READ_AHEAD = 1 << 16  # bytes read at once for a small read of a file (ByteSource._read_ahead)


class ByteSource:
    """Bytes read where they are needed, from memory, from an open file (os.pread: no shared
    position, so threads may read side by side) or from a seekable stream (a file at a URL,
    cli/remote.py: one read at a time). A file that has become shorter than what was asked for
    raises EOFError; reading never maps the file, so a file cut while it is read cannot crash
    the process."""

    __slots__ = ("_data", "_fd", "_stream", "_start", "_window", "length")  # compress holds one a blob of every file

    def __init__(self, data: bytes | None = None, fd: int | None = None, start: int = 0, length: int | None = None,
                 stream: "LockedStream | None" = None):
        self._data, self._fd, self._stream, self._start = data, fd, stream, start
        self._window = (0, b"")  # _read_ahead's: (offset, bytes) of the last window read
        if length is None:
            length = len(data) - start if data is not None else (stream.size if stream else os.fstat(fd).st_size) - start
        self.length = length

    def __reduce__(self):  # (by its arguments: faster than its slots, and no window read ahead)
        return ByteSource, (self._data, self._fd, self._start, self.length, self._stream)

    @classmethod
    def of_file(cls, f) -> "ByteSource":
        return cls(fd=f.fileno())

    @classmethod
    def of_stream(cls, f, size: int) -> "ByteSource":
        """The `size` bytes of a seekable binary stream that has no file descriptor."""
        return cls(stream=LockedStream(f, size))

    def __len__(self) -> int:
        return self.length

    @property
    def end(self) -> int:
        """Where these bytes end in the whole they are part of (the file's size, for its tail)."""
        return self._start + self.length

    def part(self, offset: int, length: int) -> "ByteSource":
        """The `length` bytes from `offset`, as a source of their own (nothing is read)."""
        if offset < 0 or length < 0 or offset + length > self.length:
            raise EOFError("past the end of the data")
        return ByteSource(self._data, self._fd, self._start + offset, length, self._stream)

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        length = self.length - offset if length is None else length
        if offset < 0 or length < 0 or offset + length > self.length:
            raise EOFError("past the end of the data")
        start = self._start + offset
        if self._data is not None:
            return bytes(self._data[start : start + length])
        if self._fd is not None and length <= READ_AHEAD // 4 and offset + length < self.length:
            return self._read_ahead(offset, length)
        return self._pread(start, length)

    def _read_ahead(self, offset: int, length: int) -> bytes:
        """A small read of a file, from a window of READ_AHEAD bytes read at once: the parts of
        an archive of many small files are read in order, and a system call for each (a million
        empty files' blobs) would cost more than the rest of `bbzip test`. Only a read with more
        after it comes here: a source read whole (compress's spooled pieces, a million of them
        held until the archive is written) keeps no window. The window is one tuple, replaced
        whole, so threads reading side by side see one window or the other."""
        window_start, window = self._window
        if not window_start <= offset or offset + length > window_start + len(window):
            window_start, window = offset, self._pread(self._start + offset, min(READ_AHEAD, self.length - offset))
            self._window = (window_start, window)
        return window[offset - window_start : offset - window_start + length]

    def _pread(self, start: int, length: int) -> bytes:
        pread = self._stream.pread if self._stream else functools.partial(os.pread, self._fd)
        data = pread(length, start)
        while len(data) < length:
            more = pread(length - len(data), start + len(data))
            if not more:
                raise EOFError("the file is shorter than it was (changed while it was read)")
            data += more
        return data


class LockedStream:
    """A seekable binary stream read as os.pread reads a file: at an offset, one read at a time
    (the stream has one position, which threads would otherwise move under each other)."""

    def __init__(self, f, size: int):
        self._f, self.size, self._lock = f, size, threading.Lock()

    def pread(self, length: int, offset: int) -> bytes:
        with self._lock:
            self._f.seek(offset)
            return self._f.read(length)
