"""The files a compress command reads: every file under the paths given, in a stable order."""
from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path

from .errors import BBZipError
from .header_schema import HeaderError, normalised_name
from .remote import Listed


def collect_inputs(paths, skipped: list | None = None) -> list[tuple[str, Path]]:
    """(archive name, path) for every file under the given paths, folders walked in sorted order;
    an input at a URL that cli/remote.py has listed (a `Listed`) gives its members as they are.

    As tar does, a symbolic link is kept as a link (never followed, so a link to a file outside
    the folder is not copied in, and one inside is not taken twice); a folder that cannot be
    read is an error that names it, never skipped in silence. What a folder holds that is
    neither a file, a folder nor a link (a named pipe, a socket, a device) is never opened
    (reading a pipe would wait for a writer): it is left out and added to `skipped`. A path
    given by name is read as it is (`bbzip compress <(...)` reads a pipe once).
    """
    found = []
    for given in paths:
        if isinstance(given, Listed):
            found += given.members
            continue
        path = Path(os.path.abspath(given))
        if not path.exists() and not path.is_symlink():
            raise BBZipError(f"{given}: no such file or directory")
        if path.is_dir() and not path.is_symlink():
            files = _walk(path, given, [] if skipped is None else skipped)
            if not files:
                raise BBZipError(f"{given}: folder holds no files")
            found += [(p.relative_to(path.parent).as_posix(), p) for p in files]
        else:
            found.append((path.name, path))
    for name, _ in found:
        try:
            normalised_name(name, "name")  # the rule decompress applies, checked before writing
        except HeaderError:
            raise BBZipError(f"{name!r}: a file name with a backslash or a control character cannot be restored "
                             "safely everywhere; rename it") from None
    duplicates = sorted(name for name, times in Counter(name for name, _ in found).items() if times > 1)
    if duplicates:
        raise BBZipError(f"{duplicates[0]}: given twice (two inputs would decompress to the same name)")
    return found


def _walk(folder: Path, given: str, skipped: list) -> list[Path]:
    def unreadable(error: OSError):
        raise BBZipError(f"{error.filename}: cannot read this folder ({error.strerror}); nothing was written")

    files = []
    for root, folders, names in os.walk(folder, onerror=unreadable):
        root_path = Path(root)
        links = [f for f in folders if (root_path / f).is_symlink()]  # kept as links, not entered
        folders[:] = sorted(f for f in folders if f not in links)
        for name in sorted(names + links):
            path = root_path / name
            try:
                mode = path.lstat().st_mode
            except OSError as error:
                raise BBZipError(f"{path}: cannot read it ({error.strerror}); nothing was written") from None
            (files if stat.S_ISREG(mode) or stat.S_ISLNK(mode) else skipped).append(path)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())
