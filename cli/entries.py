"""User files <-> archive entries.

Every input becomes one entry. How its content is kept:
- "model": 8-bit grey (or two-valued) images of the model's size go to the VAE stream, one
  stream item per image (an .npy/.npz array of N such images gives N items); with a model of
  any size (a tiled model), a grey or RGB image file of any size goes to it as its tiles, one
  stream item per tile;
- "classic": other images that can be written back with the same mode, bit depth, pixels and
  metadata (plain 8-bit or 1-bit PNG without ancillary chunks, 8-bit PNM) are kept as a lossless
  PNG, WebP or JPEG XL inside the archive, whichever is smallest and decodes to exactly the same
  pixels (cli/classic.py); so are the model's images it would code worse than they do
  (cli/fallback.py);
- "transcoded": a JPEG file kept as JPEG XL that gives back its exact bytes, where libjxl can
  and that is smaller than xz;
- "stored": anything else (PNG with metadata chunks, other depths or interlacing, TIFF, BMP,
  GIF, files that are not images, other arrays, .npz members that are not image stacks) is kept
  byte for byte, xz-compressed, and written back as it came.
Decoding writes the same relative names in the same formats with identical pixels; .npy and .npz
files are rebuilt (arrays in their memory order, zip members with their names and zip fields).

Each kind of entry is a class (cli/entry_kind.py) that owns how it is read, its header fields
and how its file is rebuilt: ImageFile, Stored and Link (cli/file_entries.py), Array and Npz
(cli/array_entries.py). A new kind is one class and one line in KINDS.
"""
from __future__ import annotations

import io
import stat
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .array_entries import Array, Npz
from .entry_kind import Entry, EntryKind
from .errors import BBZipError
from .file_entries import ImageFile, Link, Stored
from .fingerprint import Fingerprint

# In the order of the table's kind column (cli/table.py's KINDS).
KINDS: dict[str, type[EntryKind]] = {kind.name: kind for kind in (ImageFile, Array, Npz, Stored, Link)}


def read_entry(name: str, path: Path, fits_model, exact_times: bool = False) -> Entry:
    """`fits_model(stack, image_file) -> bool` says whether uint8 images (N, H, W[, C]) of an
    image file or an array can go to the model."""
    if path.is_symlink():
        return Link.read(name, path)
    status = path.stat()
    return with_attributes(_read_content(name, path, fits_model), status, exact_times)


def with_attributes(entry: Entry, status, exact_times: bool) -> Entry:
    """The entry with the file's permission bits and modification time (`status`: its
    os.stat_result), as tar and zip keep them: to the second, or with `exact_times` to the
    nanosecond (nanoseconds of files written one after another are noise to a compressor:
    about 2 bytes a file, 13% of a folder of binary MNIST)."""
    mtime = status.st_mtime_ns if exact_times else status.st_mtime_ns // SECOND * SECOND
    return entry.changed(meta={**entry.meta, "permissions": stat.S_IMODE(status.st_mode) & 0o777, "mtime_ns": mtime})


def read_from_bytes(path: Path, status) -> bool:
    """Whether what the file's entry holds is made from its bytes alone (read_content): not an
    array (whose images are read from the file as they are needed) nor a link. `status`: the
    path's lstat."""
    return not stat.S_ISLNK(status.st_mode) and path.suffix.lower() not in (".npy", ".npz")


SECOND = 10**9


def file_attributes(meta: dict) -> tuple[int, int] | None:
    """(permission bits, mtime in ns) recorded for an entry, if present and in range."""
    permissions, mtime = meta.get("permissions"), meta.get("mtime_ns")
    if not (isinstance(permissions, int) and isinstance(mtime, int)) or isinstance(permissions, bool):
        return None
    if not (0 <= permissions <= 0o777 and -(1 << 63) <= mtime < 1 << 63):
        raise BBZipError(f"{meta.get('name')!r}: damaged archive (file attributes out of range)")
    return permissions, mtime


def _read_content(name: str, path: Path, fits_model) -> Entry:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return Array.read(name, path, fits_model)
    if suffix == ".npz":
        return Npz.read(name, path, fits_model)
    return read_content(name, path.read_bytes(), fits_model)


def read_content(name: str, raw: bytes, fits_model) -> Entry:
    """The entry of a file (not an array) whose bytes are `raw`, without its file attributes."""
    if not raw:  # (Pillow would try each of its formats on it first)
        return Stored.read(name, raw, {"format": "BYTES"})
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return Stored.read(name, raw, {"format": "BYTES"})  # not an image bbzip reads: kept as it is
    return ImageFile.read(name, raw, image, fits_model)


def restore(meta, feed, blobs: list, sink) -> Fingerprint:
    """Rebuild a file from its entry's header fields, its images (an ImageFeed, cli/feed.py:
    taken in order as they are decoded) and its blobs, writing its bytes into `sink` (a seekable
    binary file); returns the fingerprint of what it gives back (to compare with
    `input_fingerprint`). With `sink` None, only the fingerprint is taken (compress's check and
    `bbzip test`: no file is encoded). A link's target is not written: the caller makes the link."""
    return KINDS[meta["kind"]].restore(meta, feed, blobs, sink)


def input_fingerprint(entry: Entry) -> Fingerprint:
    """The fingerprint `restore` must give back for this entry: of the pixels (with their mode)
    or bytes that were read; compress compares the two before it writes an archive."""
    if entry.kind is Link:
        return Link.restore(entry.meta, None, [], None)
    if entry.fingerprint is not None:
        return entry.fingerprint
    return Fingerprint(entry.items)
