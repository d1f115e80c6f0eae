"""The files a compress command reads: every file under the paths given, in the order of their
archive names, listed as they are read (a folder of a million files is never held whole)."""
from __future__ import annotations

import heapq
import os
import stat
from pathlib import Path
from typing import Iterator, NamedTuple

from .errors import BBZipError
from .header_schema import HeaderError, normalised_name
from .name_order import FileAndFolder, RepeatedName, SortedNames
from .remote import Listed
from .sorted_runs import sorted_strings
from .table import MAX_NAMES_TOTAL


LISTED_STEP = 4096  # files listed between two moves of the bar (a move a file: about a second a million)


class Status(NamedTuple):
    """What compress takes of a file's lstat (os.stat_result's names; an os.stat_result is
    about 700 bytes)."""

    st_mode: int
    st_size: int
    st_mtime_ns: int


class Input(NamedTuple):
    name: str  # in the archive
    where: object  # a folder's file: its path (str); a Path; an object at a URL (cli/remote.py: StoredObject)
    status: Status  # its lstat as listed

    @property
    def path(self):
        """A Path, or an object at a URL (a folder's file's Path is made when it is read: a
        million of them were a third of a listing's time)."""
        return Path(self.where) if isinstance(self.where, str) else self.where


class Inputs:
    """Every file under the paths given (local paths: a file, a folder, a pipe; or inputs at a
    URL that cli/remote.py has listed, a `Listed`, whose members are taken as they are), as
    Inputs in the order of their names (the order decompress checks a table of names in fastest
    and in the least memory: cli/header_schema.py), listed afresh each time they are iterated:
    what is held is the listings of the folders on the way down, and of a folder of more than
    cli/sorted_runs.py's RUN files a run of them.

    Making one lists them once: the names are checked (a name decompress could not restore, two
    inputs of one name, a file that is also a folder, too many names' bytes in all), and
    `count`, `size` (bytes) and the special files left out (`skipped`, how many; `first_skipped`)
    are counted. A later listing checks the names again as it goes (files may have come since).

    As tar does, a symbolic link is kept as a link (never followed, so a link to a file outside
    the folder is not copied in, and one inside is not taken twice); a folder that cannot be
    read is an error that names it, never skipped in silence. What a folder holds that is
    neither a file, a folder nor a link (a named pipe, a socket, a device) is never opened
    (reading a pipe would wait for a writer): it is left out and counted. A path given by name
    is read as it is: a named pipe once, a link kept as a link (as tar keeps one, `<(...)` too:
    a link in /dev/fd)."""

    def __init__(self, paths, on_listed=None):
        """`on_listed(n)`: n more files listed (a bar's advance), a few thousand at a time."""
        self._given = []
        for given in paths:
            if isinstance(given, Listed):
                self._given.append(given)
                continue
            path = Path(os.path.abspath(given))
            if not path.exists() and not path.is_symlink():
                raise BBZipError(f"{given}: no such file or directory")
            self._given.append(path)
        self.count = self.size = self.skipped = 0
        self.first_skipped = None
        for found in self._listing(self._skip):
            self.count += 1
            self.size += found.status.st_size
            if on_listed and not self.count % LISTED_STEP:
                on_listed(LISTED_STEP)
        if on_listed:
            on_listed(self.count % LISTED_STEP)

    def _skip(self, path: Path) -> None:
        self.skipped += 1
        self.first_skipped = self.first_skipped or path

    def __iter__(self) -> Iterator[Input]:
        return self._listing(lambda path: None)

    def _listing(self, skip) -> Iterator[Input]:
        streams = [_members(given) if isinstance(given, Listed) else _under(given, skip) for given in self._given]
        order, names_bytes = SortedNames(), 0
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda found: found.name)
        for place, found in enumerate(merged):
            name = found.name
            try:
                normalised_name(name, "name")  # the rule decompress applies, checked before writing
                if not order.take((name,), place):  # (each stream is sorted, and they are merged)
                    raise BBZipError(f"{name!r}: listed out of order (a bug of bbzip's); nothing was written")
            except HeaderError as error:  # (no other unsafe name is listed: not empty, absolute nor "..")
                why = str(error).removeprefix("name: ")
                if why.startswith("unsafe"):
                    why = "a file name with a backslash or a control character cannot be restored safely everywhere"
                raise BBZipError(f"{name!r}: {why}; rename it") from None
            except RepeatedName:
                raise BBZipError(f"{name}: given twice (two inputs would decompress to the same name)") from None
            except FileAndFolder as clash:
                raise BBZipError(f"{clash.name}: both a file and a folder among the inputs (they would decompress "
                                 "to the same name)") from None
            names_bytes += len(name.encode("utf-8", "surrogateescape"))
            if names_bytes > MAX_NAMES_TOTAL:
                raise BBZipError(f"the files' names add up to more than one archive holds ({MAX_NAMES_TOTAL >> 20} "
                                 "MiB); compress them into several archives")
            yield found


def _members(listed: Listed) -> Iterator[Input]:
    for name, member in listed.members:
        yield Input(name, member, _status(member))


def _under(path: Path, skip) -> Iterator[Input]:
    """The Input of a path given: itself, or if a folder every file and link under it."""
    if not path.is_dir() or path.is_symlink():
        yield Input(path.name, path, _status(path))
        return
    top = f"{path.name}/" if path.name else ""  # ("" for /)
    empty = True
    for name, file, status in _walk(str(path), skip):
        empty = False
        yield Input(top + name, file, status)
    if empty:
        raise BBZipError(f"{path}: folder holds no files")


def _walk(folder: str, skip) -> Iterator[tuple[str, str, Status]]:
    """(name relative to `folder`, path, status) of each file and link under it, in the order of the
    names: a folder's listing is sorted with each subfolder's name as its files' names begin
    (`d/`), and a subfolder is walked where it sorts. Links to folders are not entered."""
    stack = [(folder, "", _listing(folder))]
    while stack:
        here, prefix, keys = stack[-1]
        key = next(keys, None)
        if key is None:
            stack.pop()
        elif key.endswith("/"):
            inner = os.path.join(here, key[:-1])
            stack.append((inner, prefix + key, _listing(inner)))
        else:
            path = os.path.join(here, key)
            status = _status(path)
            if stat.S_ISREG(status.st_mode) or stat.S_ISLNK(status.st_mode):
                yield prefix + key, path, status
            else:
                skip(Path(path))


def _listing(folder: str) -> Iterator[str]:
    """The names in a folder, sorted, a subfolder's with "/" after it (a link to a folder is not
    a folder here)."""
    return sorted_strings(_names_in(folder))


def _names_in(folder: str) -> Iterator[str]:
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                yield entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name
    except OSError as error:
        raise BBZipError(f"{error.filename or folder}: cannot read this folder ({error.strerror}); "
                         "nothing was written") from None


def _status(path) -> Status:
    try:
        status = os.lstat(path) if isinstance(path, str) else path.lstat()
    except OSError as error:
        raise BBZipError(f"{path}: cannot read it ({error.strerror}); nothing was written") from None
    return Status(status.st_mode, status.st_size, status.st_mtime_ns)
