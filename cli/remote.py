"""Archives and inputs at URLs that fsspec understands (s3://, gs://, az://, memory://, ...).

Inputs at URLs (`bbzip compress s3://b/photos/ -o a.bb`) are fetched into a temporary folder
beside the archive and compressed from there as the local files they become, under the same
names a local folder gives (`photos/...`), with the store's modification times where it has
them; a name that could not be restored safely (`..`, a backslash, a control character) is
refused before anything is fetched. On a cluster only their arrays are fetched: the other files
are listed and each is read by the worker that makes its entry (cli/reading.py), or where the
workers cannot reach the store, here, and its bytes sent to them.

An archive at a URL is read where it lies: its table first, then only the parts an entry needs,
each a ranged read (`bbzip decompress s3://b/a.bb ONE_ENTRY` fetches that entry's blocks and
blobs, not the archive). `compress -o URL` writes and checks the archive in a local temporary
file, as for a local path, and only then uploads it, so what reaches the URL was decoded and
compared first; without -f an existing object is not replaced (checked before coding and again
before the upload: a store without exclusive creation cannot rule out a writer in between).
A file:// URL is the local path it names, with everything a local path gets.

fsspec is an optional extra (`pip install -e ".[remote]"`), imported only for a URL; each
store needs its own package as well (s3fs, gcsfs, adlfs), which fsspec names when it is missing.
"""
from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bbzip.models.files import ByteSource, leftover_prefix

from .errors import BBZipError
from .header_schema import HeaderError, normalised_name

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*::)*[A-Za-z][A-Za-z0-9+.-]*://")  # fsspec chains too (simplecache::s3://)
FETCH_BATCH = 64  # objects fetched in one call


def local_path(name: str) -> str | None:
    """The local path a name means: itself, or what a file:// URL names; None for another URL."""
    if not _URL.match(name):
        return name
    fs, path = _filesystem(name)
    return path if _is_local(fs) else None


def _filesystem(url: str):
    """(fsspec file system, path in it) of a URL; a BBZipError where it cannot be reached."""
    try:
        import fsspec
    except ImportError:
        raise BBZipError(f"{url}: URLs need fsspec (pip install -e \".[remote]\")") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as error:  # the store's own package (fsspec's message names it)
        raise BBZipError(f"{url}: {error}") from None
    except ValueError as error:  # an unknown protocol
        raise BBZipError(f"{url}: {error}") from None


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _info(fs, path: str, url: str) -> dict | None:
    """The object's fsspec info, or None where there is none."""
    try:
        return fs.info(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BBZipError(f"{url}: {error}") from None


@contextmanager
def opened(url: str):
    """The archive at a (non-local) URL as a ByteSource of ranged reads."""
    fs, path = _filesystem(url)
    info = _info(fs, path, url)
    if info is None or info.get("type") != "file":
        raise BBZipError(f"{url}: no such file")
    # A store that fails while it is read raises OSError, which the command reports in one line.
    with fs.open(path, "rb") as f:
        yield ByteSource.of_stream(f, int(info["size"]))


def refuse_overwrite(url: str, force: bool) -> None:
    """As errors.refuse_overwrite for a URL: an existing object only with -f, a folder never."""
    fs, path = _filesystem(url)
    info = _info(fs, path, url)
    if info is None:
        return
    if info.get("type") != "file":
        raise BBZipError(f"{url}: exists and is not a file; not replacing it")
    if not force:
        raise BBZipError(f"{url}: already exists (use -f to overwrite)")


def write(url: str, write_checked, force: bool) -> None:
    """write_checked(local temporary path) writes and checks the archive; then it is uploaded."""
    fs, path = _filesystem(url)
    with tempfile.NamedTemporaryFile(prefix=leftover_prefix(Path(path).name), suffix=".part") as local:
        write_checked(local.name)
        refuse_overwrite(url, force)
        try:
            fs.put_file(local.name, path)
        except OSError as error:
            raise BBZipError(f"{url}: {error}") from None


@contextmanager
def fetched(inputs: list[str], folder: Path | None, out, workers_read: bool = False):
    """The inputs as local paths: those at (non-local) URLs fetched into a temporary folder in
    `folder` (None: the system's), kept while the block runs; `out`'s bar shows the bytes. With
    `workers_read` (a cluster's workers read the files: cli/reading.py) an input at a URL is a
    `Listed` of its files instead, each a `StoredObject` read where it is needed, and only its
    arrays are fetched (their images are read from a local file as they are needed)."""
    local = [local_path(given) for given in inputs]
    if all(path is not None for path in local):
        yield local
        return
    listed = {number: _listing(given) for number, (given, path) in enumerate(zip(inputs, local)) if path is None}
    fetch = {number: [member for member in members if not workers_read or _is_array(member[1])]
             for number, (_, members) in listed.items()}
    total = sum(size for members in fetch.values() for _, _, size in members)
    with tempfile.TemporaryDirectory(dir=folder, prefix=leftover_prefix()) as temporary, \
            out.bar("fetching", total, "bytes") as advance:
        for number, members in fetch.items():
            (fs, _), _ = listed[number]
            _fetch(fs, members, Path(temporary) / str(number), inputs[number], advance)
        paths = []
        for number, path in enumerate(local):
            if path is not None:
                paths.append(path)
                continue
            (fs, top), members = listed[number]
            into = Path(temporary) / str(number)
            if not workers_read:
                paths.append(str(into / top))
                continue
            paths.append(Listed([(relative, _fetched_path(into, relative) if _is_array(relative)
                                  else StoredObject(fs, remote_path, size, _modified_ns(fs, remote_path)))
                                 for remote_path, relative, size in members]))
        yield paths


def _fetch(fs, members, into: Path, given: str, advance) -> None:
    """The (remote path, name, size) members copied under `into`, with the store's times.
    Many objects at a time: a store that fetches them side by side (s3fs, gcsfs: one request
    each) is not kept to one round trip at a time."""
    for first in range(0, len(members), FETCH_BATCH):
        batch = members[first : first + FETCH_BATCH]
        advance(0, status=batch[0][1])
        targets = [_fetched_path(into, relative) for _, relative, _ in batch]
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fs.get([remote_path for remote_path, _, _ in batch], [str(target) for target in targets])
        except OSError as error:
            raise BBZipError(f"{given}: {error}") from None
        for (remote_path, _, _), target in zip(batch, targets):
            when = _modified_ns(fs, remote_path)
            os.utime(target, ns=(when, when))
        advance(sum(size for _, _, size in batch), status="")


def _fetched_path(into: Path, relative: str) -> Path:
    return into.joinpath(*PurePosixPath(relative).parts)


def _is_array(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in (".npy", ".npz")


class Listed:
    """An input at a URL, listed: `members`, (archive name, StoredObject or fetched Path) of each
    of its files, in name order (cli/inputs.py takes them as they are)."""

    def __init__(self, members: list):
        self.members = members


class StoredObject:
    """A file at a URL, read where it is needed (by a cluster's worker, or here): what
    cli/entries.py and cli/reading.py ask of a local file's Path (suffix, status, bytes)."""

    def __init__(self, fs, path: str, size: int, mtime_ns: int):
        self.fs, self.path, self.size, self.mtime_ns = fs, path, size, mtime_ns

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.path).suffix

    def is_symlink(self) -> bool:
        return False

    def stat(self) -> "ListedStatus":
        """As listed, the status a fetched copy would have: the permission bits of a new file
        here, the store's size and modification time."""
        return ListedStatus(stat.S_IFREG | _NEW_FILE_BITS, self.size, self.mtime_ns)

    lstat = stat

    def read_bytes(self) -> bytes:
        """The object's bytes (OSError where the store does not give them here)."""
        return self.fs.cat_file(self.path)

    def __str__(self) -> str:
        return self.fs.unstrip_protocol(self.path)


@dataclass(frozen=True)
class ListedStatus:
    """What an os.stat_result gives that a listed object has."""

    st_mode: int
    st_size: int
    st_mtime_ns: int


SECOND = 10**9


def _new_file_bits() -> int:
    """The permission bits a file created here gets: 0o666 less the umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_BITS = _new_file_bits()


def _modified_ns(fs, remote_path: str) -> int:
    """The store's modification time of an object, where it keeps one; else now (what a copy
    fetched now has)."""
    try:
        return round(fs.modified(remote_path).timestamp() * SECOND)
    except (NotImplementedError, OSError, AttributeError, ValueError):
        return time.time_ns()


def _listing(url: str):
    """((fs, the name the input goes under), [(remote path, name under it, size)]) of the
    object, or of every object under the folder, at a URL."""
    fs, path = _filesystem(url)
    path = path.rstrip("/")
    info = _info(fs, path, url)
    if info is None:
        raise BBZipError(f"{url}: no such file or directory")
    top = PurePosixPath(path).name or "root"
    if info.get("type") == "file":
        members = [(path, top, int(info.get("size") or 0))]
    else:
        try:
            found = fs.find(path, detail=True)
        except OSError as error:
            raise BBZipError(f"{url}: cannot list it ({error})") from None
        files = sorted((name, details) for name, details in found.items() if details.get("type", "file") == "file")
        if any(not name.startswith(path + "/") for name, _ in files):
            raise BBZipError(f"{url}: the store listed objects outside it; nothing was fetched")
        members = [(name, f"{top}/{name[len(path) + 1:]}", int(details.get("size") or 0)) for name, details in files]
        if not members:
            raise BBZipError(f"{url}: folder holds no files")
    for _, relative, _ in members:
        parts = relative.split("/")
        try:
            normalised_name(relative, "name")
        except HeaderError:
            parts = [".."]
        if any(part in ("", ".", "..") for part in parts):
            raise BBZipError(f"{url}: holds {relative!r}, a name that cannot be restored safely; nothing was fetched")
    return (fs, top), members
