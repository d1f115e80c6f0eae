"""Archives and inputs at URLs that fsspec understands (s3://, gs://, az://, memory://, ...).

Inputs at URLs (`bbzip compress s3://b/photos/ -o a.bb`) are fetched into a temporary folder
beside the archive and compressed from there as the local files they become, under the same
names a local folder gives (`photos/...`), with the store's modification times where it has
them; a name that could not be restored safely (`..`, a backslash, a control character) is
refused before anything is fetched. Workers that read such inputs themselves are not there yet.

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
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from bbzip.models.files import ByteSource, leftover_prefix

from .errors import BBZipError
from .header_schema import HeaderError, normalised_name

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
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
def fetched(inputs: list[str], folder: Path | None, out):
    """The inputs as local paths: those at (non-local) URLs fetched into a temporary folder in
    `folder` (None: the system's), kept while the block runs; `out`'s bar shows the bytes."""
    local = [local_path(given) for given in inputs]
    if all(path is not None for path in local):
        yield local
        return
    listed = [_listing(given) if path is None else None for given, path in zip(inputs, local)]
    total = sum(size for files in listed if files for _, _, size in files[1])
    with tempfile.TemporaryDirectory(dir=folder, prefix=leftover_prefix()) as temporary, \
            out.bar("fetching", total) as advance:
        paths = []
        for number, (given, path, files) in enumerate(zip(inputs, local, listed)):
            if files is None:
                paths.append(path)
                continue
            (fs, top), members = files
            into = Path(temporary) / str(number)
            # Many objects at a time: a store that fetches them side by side (s3fs, gcsfs: one
            # request each) is not kept to one round trip at a time.
            for first in range(0, len(members), FETCH_BATCH):
                batch = members[first : first + FETCH_BATCH]
                advance(0, status=batch[0][1])
                targets = [into.joinpath(*PurePosixPath(relative).parts) for _, relative, _ in batch]
                for target in targets:
                    target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fs.get([remote_path for remote_path, _, _ in batch], [str(target) for target in targets])
                except OSError as error:
                    raise BBZipError(f"{given}: {error}") from None
                for (remote_path, _, _), target in zip(batch, targets):
                    _keep_time(fs, remote_path, target)
                advance(sum(size for _, _, size in batch), status="")
            paths.append(str(into / top))
        yield paths


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


def _keep_time(fs, remote_path: str, target: Path) -> None:
    """The store's modification time on the fetched file, where the store has one."""
    try:
        when = fs.modified(remote_path).timestamp()
    except (NotImplementedError, OSError, AttributeError, ValueError):
        return
    os.utime(target, (when, when))
