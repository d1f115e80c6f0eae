"""The files a compress command reads: every file under the paths given, in a stable order."""
from __future__ import annotations

import itertools
import os
import stat
from collections import Counter
from pathlib import Path

from .errors import BBZipError
from .header_schema import HeaderError, normalised_name
from .remote import Listed
from .table import MAX_NAMES_TOTAL


class Found:
    """(archive name, path) of every input file, in order, held compactly: a folder's files as
    their names and the folder's parent (one string for all of them; a million Path objects
    were half a kilobyte each), each path made only when it is asked for."""

    def __init__(self):
        self._names, self._sources = [], []  # a folder file's source: its folder's parent (str)

    def add(self, name: str, source) -> None:
        """`source`: the file's path (or object at a URL), or the folder `name` is relative to (str)."""
        self._names.append(name)
        self._sources.append(source)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, place: int) -> tuple[str, object]:
        name, source = self._names[place], self._sources[place]
        return name, Path(source, name) if isinstance(source, str) else source

    def __iter__(self):
        return (self[place] for place in range(len(self)))

    def names(self) -> list[str]:
        return self._names

    def sort(self) -> None:
        """In the order of their names, as decompress checks a table of names fastest (and in
        the least memory: cli/header_schema.py); a single folder's are already."""
        if any(a > b for a, b in zip(self._names, itertools.islice(self._names, 1, None))):
            order = sorted(range(len(self._names)), key=self._names.__getitem__)
            self._names = [self._names[place] for place in order]
            self._sources = [self._sources[place] for place in order]


def collect_inputs(paths, skipped: list | None = None) -> Found:
    """(archive name, path) for every file under the given paths, folders walked in sorted order;
    an input at a URL that cli/remote.py has listed (a `Listed`) gives its members as they are.

    As tar does, a symbolic link is kept as a link (never followed, so a link to a file outside
    the folder is not copied in, and one inside is not taken twice); a folder that cannot be
    read is an error that names it, never skipped in silence. What a folder holds that is
    neither a file, a folder nor a link (a named pipe, a socket, a device) is never opened
    (reading a pipe would wait for a writer): it is left out and added to `skipped`. A path
    given by name is read as it is (`bbzip compress <(...)` reads a pipe once).
    """
    found = Found()
    for given in paths:
        if isinstance(given, Listed):
            for name, member in given.members:
                found.add(name, member)
            continue
        path = Path(os.path.abspath(given))
        if not path.exists() and not path.is_symlink():
            raise BBZipError(f"{given}: no such file or directory")
        if path.is_dir() and not path.is_symlink():
            names = _walk(path, [] if skipped is None else skipped)
            if not names:
                raise BBZipError(f"{given}: folder holds no files")
            parent, top = str(path.parent), f"{path.name}/" if path.name else ""  # ("" for /)
            for name in names:
                found.add(top + name, parent)
        else:
            found.add(path.name, path)
    for name in found.names():
        try:
            normalised_name(name, "name")  # the rule decompress applies, checked before writing
        except HeaderError:
            raise BBZipError(f"{name!r}: a file name with a backslash or a control character cannot be restored "
                             "safely everywhere; rename it") from None
    duplicates = sorted(name for name, times in Counter(found.names()).items() if times > 1)
    if duplicates:
        raise BBZipError(f"{duplicates[0]}: given twice (two inputs would decompress to the same name)")
    if sum(len(name.encode("utf-8", "surrogateescape")) for name in found.names()) > MAX_NAMES_TOTAL:
        raise BBZipError(f"the files' names add up to more than one archive holds ({MAX_NAMES_TOTAL >> 20} MiB); "
                         "compress them into several archives")
    found.sort()
    return found


def _walk(folder: Path, skipped: list) -> list[str]:
    """The names (relative to `folder`, in sorted order) of the files and links under it."""
    def unreadable(error: OSError):
        raise BBZipError(f"{error.filename}: cannot read this folder ({error.strerror}); nothing was written")

    names = []
    for root, folders, files in os.walk(folder, onerror=unreadable):
        root_path = Path(root)
        prefix = root_path.relative_to(folder).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        links = [f for f in folders if (root_path / f).is_symlink()]  # kept as links, not entered
        folders[:] = sorted(f for f in folders if f not in links)
        for name in sorted(files + links):
            path = root_path / name
            try:
                mode = path.lstat().st_mode
            except OSError as error:
                raise BBZipError(f"{path}: cannot read it ({error.strerror}); nothing was written") from None
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                names.append(prefix + name)
            else:
                skipped.append(path)
    names.sort()
    return names
