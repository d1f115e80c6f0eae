"""Archives at URLs that fsspec understands (s3://, gs://, az://, memory://, ...).

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

import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bbzip.models.files import ByteSource, leftover_prefix

from .errors import BBZipError

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(name: str) -> bool:
    """Whether `name` is a URL (scheme://...) rather than a local path."""
    return bool(_URL.match(name))


def local_path(name: str) -> str | None:
    """The local path a name means: itself, or what a file:// URL names; None for another URL."""
    if not is_url(name):
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
    try:
        with fs.open(path, "rb") as f:
            yield ByteSource.of_stream(f, int(info["size"]))
    except OSError as error:  # the store failed while reading (not damage in the archive)
        raise BBZipError(f"{url}: {error}") from None


def size(url: str) -> int:
    fs, path = _filesystem(url)
    info = _info(fs, path, url)
    if info is None:
        raise BBZipError(f"{url}: no such file")
    return int(info["size"])


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
