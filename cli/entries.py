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
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import lzma
import math
import os
import stat
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bbzip.models.blocks import StackedImages

from . import classic, jpegxl, sources
from .errors import BBZipError
from .header_schema import HeaderError, normalised_name

NO_IMAGES = np.zeros((0, 0, 0), dtype=np.uint8)


@dataclass
class Entry:
    """One input file; `items` are the images (N, H, W) it sends to the model stream."""

    name: str
    kind: str  # "image" or "array" or "npz" or "stored"
    meta: dict = field(default_factory=dict)
    items: np.ndarray = field(default_factory=lambda: NO_IMAGES)  # or a stack read as needed (cli/sources.py)
    blobs: list = field(default_factory=list)  # bytes kept outside the model stream
    fingerprint: "Fingerprint | None" = field(default=None, repr=False)  # of what `restore` must give back
    stamp: "sources.FileStamp | None" = field(default=None, repr=False)  # the file `items` are read from as needed


def collect_inputs(paths, skipped: list | None = None) -> list[tuple[str, Path]]:
    """(archive name, path) for every file under the given paths, folders walked in sorted order.

    As tar does, a symbolic link is kept as a link (never followed, so a link to a file outside
    the folder is not copied in, and one inside is not taken twice); a folder that cannot be
    read is an error that names it, never skipped in silence. What a folder holds that is
    neither a file, a folder nor a link (a named pipe, a socket, a device) is never opened
    (reading a pipe would wait for a writer): it is left out and added to `skipped`. A path
    given by name is read as it is (`bbzip compress <(...)` reads a pipe once).
    """
    found = []
    for given in paths:
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


# -- reading -----------------------------------------------------------------------------------
def read_entry(name: str, path: Path, fits_model, exact_times: bool = False) -> Entry:
    """`fits_model(stack, image_file) -> bool` says whether uint8 images (N, H, W[, C]) of an
    image file or an array can go to the model.
    The entry keeps the file's permission bits and modification time, as tar and zip do: to
    the second, or with `exact_times` to the nanosecond (nanoseconds of files written one after
    another are noise to a compressor: about 2 bytes a file, 13% of a folder of binary MNIST)."""
    if path.is_symlink():
        return Entry(name, "link", {"format": "LINK", "store": "link", "target": os.readlink(path)})
    status = path.stat()
    entry = _read_content(name, path, fits_model)
    entry.meta["permissions"] = stat.S_IMODE(status.st_mode) & 0o777
    entry.meta["mtime_ns"] = status.st_mtime_ns if exact_times else status.st_mtime_ns // SECOND * SECOND
    return entry


SECOND = 10**9


def file_attributes(meta: dict) -> tuple[int, int] | None:
    """(permission bits, mtime in ns) recorded for an entry, if present and in range."""
    permissions, mtime = meta.get("permissions"), meta.get("mtime_ns")
    if not (isinstance(permissions, int) and isinstance(mtime, int)) or isinstance(permissions, bool):
        return None
    if not (0 <= permissions <= 0o777 and 0 <= mtime < 1 << 63):
        raise BBZipError(f"{meta.get('name')!r}: damaged archive (file attributes out of range)")
    return permissions, mtime


def _read_content(name: str, path: Path, fits_model) -> Entry:
    # Arrays are read where they lie, as they are needed (cli/sources.py): only a regular
    # file can be read more than once; anything else (a named pipe) is read once, whole.
    regular = path.is_file()
    if path.suffix.lower() == ".npy":
        entry = _npy_read_as_needed(name, path, fits_model) if regular else None
        return entry or _read_npy(name, path.read_bytes(), fits_model)
    if path.suffix.lower() == ".npz":
        return _read_npz(name, path, fits_model) if regular else _stored(name, path.read_bytes(), {"format": "NPZ"})
    raw = path.read_bytes()
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return _stored(name, raw, {"format": "BYTES"})  # not an image bbzip reads: kept as it is
    return _read_image(name, raw, image, fits_model)


def _read_image(name, raw, image, fits_model) -> Entry:
    fmt = image.format
    meta = {"format": fmt, "mode": image.mode, "width": image.width, "height": image.height}
    if fmt == "JPEG":
        return _transcoded(name, raw, meta)
    if not _rewritable(raw, image):
        return _stored(name, raw, meta)
    if image.mode in ("L", "1", "RGB"):
        pixels = np.asarray(image, dtype=np.uint8)
        if fits_model(pixels[None]):
            return Entry(name, "image", {**meta, "store": "model"}, items=pixels[None])
    return _classic(name, raw, image, meta)


# Chunks a PNG re-encoded by Pillow gets back as they were; any other (tRNS, iCCP, gAMA, pHYs,
# text, eXIf, ...) is metadata that re-encoding would lose, so such a file is kept as bytes.
_PNG_PLAIN_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


def _rewritable(raw: bytes, image: Image.Image) -> bool:
    """Whether writing the decoded pixels back gives the same mode, bit depth, pixels and
    metadata. Only plain 8-bit (or 1-bit grey) PNGs and 8-bit PNM files qualify; every other
    image is kept byte for byte."""
    if getattr(image, "n_frames", 1) > 1:
        return False
    if image.format == "PNG":
        return _plain_png(raw)
    if image.format == "PPM":  # comments are metadata a re-encoding would drop
        return _pnm_maxval(raw) in (None, 255) and not _pnm_has_comment(raw)
    return False


def _plain_png(raw: bytes) -> bool:
    if len(raw) < 33:
        return False
    bit_depth, colour_type, interlace = raw[24], raw[25], raw[28]
    if interlace != 0 or not (bit_depth == 8 or (bit_depth == 1 and colour_type == 0)):
        return False
    position = 8
    while position + 8 <= len(raw):
        length = int.from_bytes(raw[position : position + 4], "big")
        if raw[position + 4 : position + 8] not in _PNG_PLAIN_CHUNKS:
            return False
        position += 12 + length
    return True


def _pnm_has_comment(raw: bytes) -> bool:
    """Whether the header (magic, width, height and, but for bitmaps, maxval) holds a '#'
    comment anywhere before the raster."""
    needed = 2 if raw[:2] in (b"P1", b"P4") else 3
    fields, position, limit = 0, 2, min(len(raw), 1024)
    while position < limit:
        byte = raw[position : position + 1]
        if byte == b"#":
            return True
        if byte.isspace():
            if fields == needed:
                return False  # the one whitespace before the raster
        elif raw[position - 1 : position].isspace():
            fields += 1
        position += 1
    return False


def _pnm_maxval(raw: bytes) -> int | None:
    """The maxval of a PGM/PPM header (None for a bitmap, which has none); -1 if unreadable."""
    tokens, position = [], 0
    while len(tokens) < 4 and position < min(len(raw), 1024):
        if raw[position : position + 1] == b"#":
            position = raw.find(b"\n", position) + 1 or len(raw)
            continue
        end = position
        while end < len(raw) and not raw[end : end + 1].isspace() and raw[end : end + 1] != b"#":
            end += 1
        if end > position:
            tokens.append(raw[position:end])
        position = max(end, position + 1)
    if tokens[:1] in ([b"P1"], [b"P4"]):
        return None
    try:
        return int(tokens[3])
    except (IndexError, ValueError):
        return -1


def _classic(name, raw, image, meta) -> Entry:
    """The smallest lossless re-encoding that decodes to exactly the same mode and pixels; the
    file's own bytes if none does."""
    found = classic.smallest_faithful(image)
    if found is None:
        return _stored(name, raw, meta)
    return classic_image_entry(name, meta, image, *found)


def classic_image_entry(name: str, meta: dict, image: Image.Image, codec: str, blob: bytes) -> Entry:
    """An image entry kept as `codec`'s blob (checked to decode to `image`)."""
    return Entry(name, "image", {**meta, "store": "classic", "codec": codec}, blobs=[blob],
                 fingerprint=Fingerprint(classic.pixel_bytes(image)))


def model_image(pixels: np.ndarray, mode: str) -> Image.Image:
    """A model image (H, W) or (H, W, 3) uint8 as the file's mode: "1" (0 black, anything else
    white), "L" or "RGB"."""
    return Image.fromarray(pixels.astype(bool)) if mode == "1" else Image.fromarray(pixels, mode=mode)


def _transcoded(name, raw, meta) -> Entry:
    """A JPEG file as the JPEG XL transcode that gives back its bytes, if there is one and it
    is smaller than xz would keep the file in; else the file's bytes."""
    stored = _stored(name, raw, meta)
    mode = meta["mode"] if meta["mode"] in jpegxl.MODES else None
    blob = jpegxl.transcode_jpeg(raw, mode, meta["width"], meta["height"]) if mode else None
    if blob is None or len(blob) >= len(stored.blobs[0]):
        return stored
    return Entry(name, "stored", {**meta, "store": "transcoded", "size": len(raw)}, blobs=[blob], fingerprint=Fingerprint(raw))


def _stored(name, raw, meta) -> Entry:
    meta = {**meta, "store": "stored", "size": len(raw)}
    return Entry(name, "stored", meta, blobs=[xz(raw)], fingerprint=Fingerprint(raw))


def xz(raw: bytes) -> bytes:
    """xz at preset 9 with a dictionary no larger than the bytes need (at least 64 KiB, at
    most preset 9's 64 MiB): the same compressed data (only the block header's
    dictionary size and its crc differ), but neither the encoder nor the decoder sets up preset
    9's whole dictionary for a small file (compressing 1 MiB: 30 instead of 90 MB of memory;
    130 KB of text 8x faster)."""
    dictionary = 1 << 16
    while dictionary < len(raw) and dictionary < XZ_DICTIONARY:
        dictionary <<= 1
    return lzma.compress(raw, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": dictionary}])


XZ_DICTIONARY = 64 << 20  # preset 9's


XZ_MEMORY_LIMIT = 96 << 20  # the decoder's own memory: preset 9's 64 MiB dictionary, and no more


def _unxz(blob: bytes, size: int) -> bytes:
    """xz-decompress at most the size the header declares (a bomb stops there), with a decoder
    that may not take more memory than bbzip's own archives need."""
    data, complete, trailing = _inflate(blob, size + 1)
    if len(data) != size or not complete:
        raise ValueError("stored bytes do not have the declared size")
    if trailing:  # bbzip writes one xz stream a blob: anything after it is damage
        raise ValueError("bytes after the stored xz stream")
    return data


def _inflate(blob: bytes, max_length: int) -> tuple[bytes, bool, bool]:
    """(data, whether the stream ended, whether bytes follow its end)."""
    # On its own so that the decoder (and its dictionary) is freed before any error is raised,
    # not kept alive by the traceback.
    inflater = lzma.LZMADecompressor(memlimit=XZ_MEMORY_LIMIT)
    data = inflater.decompress(blob, max_length=max_length)
    return data, inflater.eof, bool(inflater.unused_data)


def _npy_read_as_needed(name: str, path: Path, fits_model) -> Entry | None:
    """A C-order uint8 .npy image stack whose images are read from the file as they are needed
    (cli/sources.py), or None for any other .npy file (read whole: Fortran order, other arrays,
    files that are not plain arrays)."""
    with open(path, "rb") as f:
        found = _npy_layout(f, os.fstat(f.fileno()).st_size)
        status = os.fstat(f.fileno())
    if found is None:
        return None
    offset, shape = found
    stamp = sources.FileStamp(path, status)
    stack = sources.NpyFileImages(stamp, offset, shape)
    if not _is_image_stack(stack, fits_model):
        return None
    meta = {"format": "NPY", "shape": list(shape), "store": "model", "fortran_order": False}
    return Entry(name, "array", meta, items=stack, fingerprint=Fingerprint().update_stack(stack), stamp=stamp)


def _npy_layout(stream, size: int) -> tuple[int, tuple] | None:
    """(bytes before the images, shape) of an .npy stream holding a C-order uint8 3-d array
    and nothing after it; None for anything else."""
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            return None
        shape, fortran_order, dtype = read_header(stream)
        offset = stream.tell()
    except (ValueError, OSError, EOFError, SyntaxError):
        return None
    if dtype != np.uint8 or fortran_order or len(shape) != 3 or size != offset + math.prod(shape):
        return None
    return offset, tuple(shape)


def _read_npy(name, raw, fits_model) -> Entry:
    array = _npy_array(raw)
    if array is not None and _is_image_stack(array, fits_model):
        meta = {"format": "NPY", "shape": list(array.shape), "store": "model", "fortran_order": _fortran(array)}
        return Entry(name, "array", meta, items=np.ascontiguousarray(array))
    return _stored(name, raw, {"format": "NPY"})


def _npy_array(raw: bytes):
    """The array of .npy bytes, or None if they are not one (pickled objects are never loaded).
    A plain array is a read-only view of the bytes, not a copy: a large stack is held once."""
    buffer = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buffer)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is not None:
            shape, fortran_order, dtype = read_header(buffer)
            count = int(np.prod(shape, dtype=np.int64))
            if not dtype.hasobject and len(raw) - buffer.tell() == count * dtype.itemsize:
                flat = np.frombuffer(raw, dtype=dtype, count=count, offset=buffer.tell())
                return flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)
        buffer.seek(0)
        array = np.lib.format.read_array(buffer, allow_pickle=False)
        return array if buffer.tell() == len(raw) else None  # bytes after the array: kept as bytes
    except (ValueError, OSError, EOFError):
        return None


def _fortran(array) -> bool:
    return bool(array.flags.f_contiguous and not array.flags.c_contiguous)


def _read_npz(name, path: Path, fits_model) -> Entry:
    """Every member of the zip by its own name: image stacks to the model (a C-order one read
    through the zip as it is needed, cli/sources.py), anything else (other arrays, files that
    are not arrays, members named like np.savez's own arguments) as bytes. A zip that cannot be
    read is kept as bytes whole."""
    try:
        return _npz_members(name, path, fits_model)
    except (zipfile.BadZipFile, sources.UnreadableMember, OSError, EOFError, NotImplementedError, RuntimeError, ValueError):
        return _stored(name, path.read_bytes(), {"format": "NPZ"})


def _npz_members(name, path: Path, fits_model) -> Entry:
    meta = {"format": "NPZ", "store": "members", "compressed": False, "members": []}
    entry, stacks, fingerprint = Entry(name, "npz", meta), [], Fingerprint()
    with open(path, "rb") as f:
        stamp = sources.FileStamp(path, os.fstat(f.fileno()))
        with zipfile.ZipFile(f) as archive:
            infos = archive.infolist()
            meta["compressed"] = any(info.compress_type != zipfile.ZIP_STORED for info in infos)
            for info in infos:
                # The zip fields of each member, so that the rebuilt file is byte-identical
                # where the compressor agrees (np.savez's files are).
                fields = {"member": info.filename, "date_time": list(info.date_time), "compress_type": info.compress_type,
                          "external_attr": info.external_attr, "create_system": info.create_system,
                          "zip64": info.extract_version >= zipfile.ZIP64_VERSION}
                content = _npz_member(archive, info, stamp, fits_model)
                if isinstance(content, bytes):
                    meta["members"].append({**fields, "store": "stored", "size": len(content)})
                    entry.blobs.append(xz(content))
                else:
                    fortran = isinstance(content, np.ndarray) and _fortran(content)
                    meta["members"].append({**fields, "store": "model", "shape": list(content.shape), "fortran_order": fortran})
                    content = np.ascontiguousarray(content) if fortran else content
                    stacks.append(content)
                _add_member(fingerprint, info.filename, content)
    entry.items = StackedImages(stacks) if stacks else entry.items
    entry.fingerprint, entry.stamp = fingerprint, stamp
    return entry


def _npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, stamp, fits_model):
    """An .npz member as an image stack (a C-order uint8 one read through the zip as it is
    needed; a Fortran-order one as its array, read whole), or else its bytes."""
    if not info.filename.endswith(".npy"):
        return archive.read(info)
    with archive.open(info) as stream:
        found = _npy_layout(stream, info.file_size)
    if found is not None:
        stack = sources.NpzMemberImages(stamp, info.filename, *found)
        return stack if _is_image_stack(stack, fits_model) else archive.read(info)
    content = archive.read(info)
    array = _npy_array(content)  # not a C-order uint8 stack: an image stack only in Fortran order
    return array if array is not None and _is_image_stack(array, fits_model) else content


def _add_member(fingerprint: "Fingerprint", name: str, content) -> None:
    """What the check covers of one npz member: its name and its pixels or bytes."""
    fingerprint.update(name.encode() + b"\0")
    if isinstance(content, (bytes, np.ndarray)):
        fingerprint.update(content)
    else:
        fingerprint.update_stack(content)


def npy_header(shape, fortran_order: bool) -> bytes:
    """The header np.save writes before a uint8 array of `shape`: version 1.0 where it fits,
    else 2.0, as np.save chooses."""
    fields = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": fortran_order,
              "shape": tuple(shape)}
    header = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(header, fields)
    except ValueError:
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(header, fields)
    return header.getvalue()


def _write_npy(sink, fingerprint: "Fingerprint", feed, shape, fortran_order: bool) -> None:
    """An .npy file's bytes from the entry's images: a C-order array run by run as the images
    come (the fingerprint covers the pixels in C order either way); a Fortran-order one, whose
    bytes interleave all images, whole."""
    if sink is not None:
        sink.write(npy_header(shape, fortran_order))
    if not fortran_order:
        for run in feed.take(shape[0]):
            fingerprint.update(run)
            if sink is not None:
                sink.write(memoryview(np.ascontiguousarray(run)).cast("B"))
        return
    array = feed.whole(shape[0]).reshape(shape)
    fingerprint.update(array)
    if sink is not None:
        sink.write(memoryview(np.asfortranarray(array).T).cast("B"))


def _is_image_stack(array, fits_model) -> bool:
    return array.dtype == np.uint8 and array.ndim == 3 and len(array) > 0 and fits_model(array, image_file=False)


FINGERPRINT_RUN = 4096  # images read at a time to take a fingerprint


class Fingerprint:
    """sha256 and crc32 of what an entry gives back (its pixels with their mode, or its bytes),
    taken piece by piece: no joined copy of a large file's pixels is made to take them."""

    def __init__(self, *pieces):
        self._sha256, self.crc32 = hashlib.sha256(), 0
        for piece in pieces:
            self.update(piece)

    def update(self, piece) -> "Fingerprint":
        view = memoryview(np.ascontiguousarray(piece) if isinstance(piece, np.ndarray) else piece).cast("B")
        self._sha256.update(view)
        self.crc32 = zlib.crc32(view, self.crc32)
        return self

    def update_stack(self, stack) -> "Fingerprint":
        """The pixels of a stack read as needed (cli/sources.py), a run of images at a time."""
        for lo in range(0, len(stack), FINGERPRINT_RUN):
            self.update(stack[lo : lo + FINGERPRINT_RUN])
        return self

    @property
    def sha256(self) -> bytes:
        return self._sha256.digest()


# -- writing -----------------------------------------------------------------------------------
def restore(meta: dict, feed, blobs: list, sink) -> Fingerprint:
    """Rebuild a file from its entry, its images (an ImageFeed, cli/feed.py: taken in order as
    they are decoded) and its blobs, writing its bytes into `sink` (a seekable binary file);
    returns the fingerprint of what it gives back (to compare with `input_fingerprint`). With
    `sink` None, only the fingerprint is taken (compress's check and `bbzip test`: no file is
    encoded). A link's target is not written: the caller makes the link."""
    fmt = meta["format"]
    if meta.get("store") == "link":
        return Fingerprint(meta["target"].encode())
    if meta.get("store") in ("stored", "transcoded"):
        if meta["store"] == "stored":
            raw = _unxz(blobs[0], meta["size"])
        else:
            raw = jpegxl.reconstruct_jpeg(blobs[0], meta["width"], meta["height"])
            if len(raw) != meta["size"]:
                raise ValueError("transcoded JPEG does not have the declared size")
        if sink is not None:
            sink.write(raw)
        return Fingerprint(raw)
    fingerprint = Fingerprint()
    if fmt == "NPY":
        _write_npy(sink, fingerprint, feed, meta["shape"], meta.get("fortran_order", False))
        return fingerprint
    if fmt == "NPZ":
        _restore_npz(meta, feed, blobs, sink, fingerprint)
        return fingerprint
    if meta["store"] == "model":
        pixels = feed.whole(1)[0]
        image = model_image(pixels, meta["mode"])
        fingerprint.update(pixels)
    else:
        image = classic.decode(blobs[0], meta["codec"], meta["mode"], meta["width"], meta["height"])
        fingerprint.update(classic.pixel_bytes(image))
    if sink is not None:  # encoded here, then written: PIL would write past the sink to its file
        encoded = io.BytesIO()
        image.save(encoded, format=fmt)
        sink.write(encoded.getvalue())
    return fingerprint


def _restore_npz(meta, feed, blobs, sink, fingerprint: Fingerprint) -> None:
    """The zip with the same members in the same order (arrays written again as their images
    come, other members as they were); the fingerprint covers each member's name and its pixels
    or bytes."""
    compression = zipfile.ZIP_DEFLATED if meta["compressed"] else zipfile.ZIP_STORED
    stored = iter(blobs)
    with zipfile.ZipFile(sink, "w", compression=compression) if sink is not None else contextlib.nullcontext() as archive:
        for member in meta["members"]:
            _add_member(fingerprint, member["member"], b"")
            with _member_stream(archive, member) as stream:
                if member["store"] == "model":
                    _write_npy(stream, fingerprint, feed, member["shape"], member.get("fortran_order", False))
                else:
                    content = _unxz(next(stored), member["size"])
                    fingerprint.update(content)
                    if stream is not None:
                        stream.write(content)


def _member_stream(archive: zipfile.ZipFile | None, member: dict):
    """A member of the zip being written, with its recorded zip fields, to write into; nothing
    (None) where no file is written."""
    if archive is None:
        return contextlib.nullcontext()
    info = zipfile.ZipInfo(member["member"], date_time=tuple(member["date_time"]))
    info.compress_type, info.external_attr = member["compress_type"], member["external_attr"]
    info.create_system = member["create_system"]
    return archive.open(info, "w", force_zip64=member.get("zip64", False))


def input_fingerprint(entry: Entry) -> Fingerprint:
    """The fingerprint `restore` must give back for this entry: of the pixels (with their mode)
    or bytes that were read; compress compares the two before it writes an archive."""
    if entry.meta.get("store") == "link":
        return Fingerprint(entry.meta["target"].encode())
    if entry.fingerprint is not None:
        return entry.fingerprint
    return Fingerprint(entry.items)
