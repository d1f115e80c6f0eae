"""User files <-> archive entries.

Every input becomes one entry. How its content is kept:
- "model": 8-bit grey (or two-valued) images of the model's size go to the VAE stream, one
  stream item per image (an .npy/.npz array of N such images gives N items);
- "classic": other images in a format we can write back losslessly (PNG, BMP, TIFF, PNM) are
  kept as a lossless PNG or WebP inside the archive, whichever is smaller;
- "stored": anything else (JPEG, GIF, other arrays, .npz members that are not images) is kept
  byte for byte, xz-compressed, and written back as it came.
Decoding writes the same relative names in the same formats with identical pixels.
"""
from __future__ import annotations

import io
import lzma
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import BBZipError

REWRITABLE = {"PNG", "BMP", "TIFF", "PPM"}  # Pillow writes these back with identical pixels
CLASSIC_CODECS = ("PNG", "WEBP")  # what classic entries are re-encoded with
ARRAY_SUFFIXES = {".npy", ".npz"}


@dataclass
class Entry:
    """One input file; `items` are the images it sends to the model stream."""

    name: str
    kind: str  # "image" or "array" or "npz" or "stored"
    meta: dict = field(default_factory=dict)
    items: list = field(default_factory=list)  # uint8 arrays (H, W) for the model
    blobs: list = field(default_factory=list)  # bytes kept outside the model stream


def collect_inputs(paths) -> list[tuple[str, Path]]:
    """(archive name, path) for every file under the given paths, folders walked in sorted order."""
    found = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise BBZipError(f"{given}: no such file or directory")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            if not files:
                raise BBZipError(f"{given}: folder holds no files")
            base = path.resolve().parent
            found += [(p.resolve().relative_to(base).as_posix(), p) for p in files]
        else:
            found.append((path.name, path))
    for name, _ in found:
        if "\\" in name or any(ord(c) < 32 for c in name):
            raise BBZipError(f"{name!r}: a file name with a backslash or a control character cannot be restored "
                             "safely everywhere; rename it")
    names = [name for name, _ in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BBZipError(f"{duplicates[0]}: given twice (two inputs would decompress to the same name)")
    return found


def safe_name(name: str) -> str:
    """Reject names that would escape the output folder (a damaged or hostile archive)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or "\x00" in name:
        raise BBZipError(f"archive holds an unsafe file name {name!r}")
    return name


# -- reading -----------------------------------------------------------------------------------
def read_entry(name: str, path: Path, fits_model) -> Entry:
    """`fits_model(stack) -> bool` says whether uint8 images (N, H, W) can go to the model.
    The entry keeps the file's permission bits and modification time, as tar and zip do."""
    status = path.stat()
    entry = _read_content(name, path, fits_model)
    entry.meta["permissions"] = stat.S_IMODE(status.st_mode) & 0o777
    entry.meta["mtime_ns"] = status.st_mtime_ns
    return entry


def file_attributes(meta: dict) -> tuple[int, int] | None:
    """(permission bits, mtime in ns) recorded for an entry, if present and in range."""
    permissions, mtime = meta.get("permissions"), meta.get("mtime_ns")
    if not (isinstance(permissions, int) and isinstance(mtime, int)) or isinstance(permissions, bool):
        return None
    if not (0 <= permissions <= 0o777 and 0 <= mtime < 1 << 63):
        raise BBZipError(f"{meta.get('name')!r}: damaged archive (file attributes out of range)")
    return permissions, mtime


def _read_content(name: str, path: Path, fits_model) -> Entry:
    raw = path.read_bytes()
    if path.suffix.lower() == ".npy":
        return _read_npy(name, raw, fits_model)
    if path.suffix.lower() == ".npz":
        return _read_npz(name, raw, fits_model)
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BBZipError(f"{path}: not an image bbzip can read ({error})") from None
    return _read_image(name, raw, image, fits_model)


def _read_image(name, raw, image, fits_model) -> Entry:
    fmt = image.format
    meta = {"format": fmt, "mode": image.mode, "width": image.width, "height": image.height}
    if fmt not in REWRITABLE or getattr(image, "n_frames", 1) > 1 or _png_deeper_than_read(raw, image):
        return _stored(name, raw, meta)
    if image.mode in ("L", "1"):
        pixels = np.asarray(image, dtype=np.uint8)
        if fits_model(pixels[None]):
            return Entry(name, "image", {**meta, "store": "model"}, items=[pixels])
    return _classic(name, raw, image, meta)


def _png_deeper_than_read(raw: bytes, image: Image.Image) -> bool:
    """A 16-bit colour or grey+alpha PNG, which Pillow reads as 8 bits: only its bytes keep it."""
    if image.format != "PNG" or len(raw) < 26:
        return False
    bit_depth = raw[24]  # IHDR: 8 signature + 4 length + 4 type + 4 width + 4 height, then depth
    return bit_depth == 16 and image.mode not in ("I", "I;16", "I;16B", "I;16L")


def _classic(name, raw, image, meta) -> Entry:
    """The smallest lossless re-encoding that decodes to exactly the same mode and pixels
    (each candidate is decoded and compared here, before the archive is written); the file's
    own bytes if none does."""
    expected = _pixel_bytes(image)
    candidates = []
    png = io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    candidates.append(("PNG", png.getvalue()))
    if image.mode in ("RGB", "RGBA"):
        webp = io.BytesIO()
        try:
            # exact: keep the colour under fully transparent pixels (WebP drops it by default)
            image.save(webp, format="WEBP", lossless=True, quality=100, method=6, exact=True)
            candidates.append(("WEBP", webp.getvalue()))
        except (OSError, KeyError):  # Pillow built without WebP
            pass
    faithful = [(codec, blob) for codec, blob in candidates if _decodes_to(blob, codec, image.mode, expected)]
    if not faithful:
        return _stored(name, raw, meta)
    codec, blob = min(faithful, key=lambda c: len(c[1]))
    return Entry(name, "image", {**meta, "store": "classic", "codec": codec, "pixels": expected}, blobs=[blob])


def _decodes_to(blob: bytes, codec: str, mode: str, expected: bytes) -> bool:
    try:
        decoded = Image.open(io.BytesIO(blob), formats=[codec])
        decoded.load()
    except (OSError, ValueError, SyntaxError):
        return False
    return decoded.mode == mode and _pixel_bytes(decoded) == expected


def _stored(name, raw, meta) -> Entry:
    return Entry(name, "stored", {**meta, "store": "stored", "pixels": raw}, blobs=[lzma.compress(raw, preset=9)])


def _read_npy(name, raw, fits_model) -> Entry:
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as error:
        raise BBZipError(f"{name}: not a readable .npy array ({error})") from None
    if _is_image_stack(array, fits_model):
        return Entry(name, "array", {"format": "NPY", "shape": list(array.shape), "store": "model"}, items=list(array))
    return _stored(name, raw, {"format": "NPY"})


def _read_npz(name, raw, fits_model) -> Entry:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            compressed = any(info.compress_type != zipfile.ZIP_STORED for info in archive.infolist())
        arrays = np.load(io.BytesIO(raw), allow_pickle=False)
        members = {key: arrays[key] for key in arrays.files}
    except (ValueError, zipfile.BadZipFile, OSError) as error:
        raise BBZipError(f"{name}: not a readable .npz archive ({error})") from None
    meta = {"format": "NPZ", "compressed": compressed, "members": []}
    entry = Entry(name, "npz", meta)
    for key, array in members.items():
        if _is_image_stack(array, fits_model):
            meta["members"].append({"key": key, "store": "model", "shape": list(array.shape)})
            entry.items += list(array)
        else:
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            meta["members"].append({"key": key, "store": "stored"})
            entry.blobs.append(lzma.compress(buffer.getvalue(), preset=9))
    return entry


def _is_image_stack(array, fits_model) -> bool:
    return array.dtype == np.uint8 and array.ndim == 3 and len(array) > 0 and fits_model(array)


def _pixel_bytes(image: Image.Image) -> bytes:
    return image.mode.encode() + b":" + image.tobytes()


# -- writing -----------------------------------------------------------------------------------
def restore(meta: dict, items: list, blobs: list) -> tuple[bytes, bytes]:
    """Rebuild a file's bytes from its entry; also returns the bytes its checksum covers."""
    fmt = meta["format"]
    if meta.get("store") == "stored":
        raw = lzma.decompress(blobs[0])
        return raw, raw
    if fmt == "NPY":
        array = np.stack(items).astype(np.uint8).reshape(meta["shape"])
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue(), array.tobytes()
    if fmt == "NPZ":
        return _restore_npz(meta, items, blobs)
    if meta["store"] == "model":
        pixels = items[0].astype(np.uint8)
        image = Image.fromarray(pixels.astype(bool)) if meta["mode"] == "1" else Image.fromarray(pixels, mode="L")
    else:
        codec = meta.get("codec")
        # Only the formats bbzip writes: a hostile entry must not reach any other Pillow plugin.
        image = Image.open(io.BytesIO(blobs[0]), formats=[codec] if codec in CLASSIC_CODECS else [])
        image.load()
        if image.mode != meta["mode"]:
            raise BBZipError(f"{meta.get('name', 'entry')}: stored image decoded in mode {image.mode}, expected {meta['mode']}")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue(), _pixel_bytes(image) if meta["store"] != "model" else items[0].astype(np.uint8).tobytes()


def _restore_npz(meta, items, blobs):
    arrays, item_pos, blob_pos = {}, 0, 0
    for member in meta["members"]:
        if member["store"] == "model":
            count = member["shape"][0]
            arrays[member["key"]] = np.stack(items[item_pos : item_pos + count]).astype(np.uint8)
            item_pos += count
        else:
            arrays[member["key"]] = np.load(io.BytesIO(lzma.decompress(blobs[blob_pos])), allow_pickle=False)
            blob_pos += 1
    buffer = io.BytesIO()
    (np.savez_compressed if meta["compressed"] else np.savez)(buffer, **arrays)
    digest_source = b"".join(k.encode() + arrays[k].tobytes() for k in sorted(arrays))
    return buffer.getvalue(), digest_source


def checksum_source(entry: Entry) -> bytes:
    """The bytes the archive checksums for this entry (as `restore` recomputes them)."""
    meta = entry.meta
    if meta.get("store") in ("stored", "classic"):
        return meta["pixels"]
    if meta["format"] == "NPY":
        return np.stack(entry.items).astype(np.uint8).tobytes()
    if meta["format"] == "NPZ":
        _, source = _restore_npz(meta, entry.items, entry.blobs)
        return source
    return entry.items[0].astype(np.uint8).tobytes()
