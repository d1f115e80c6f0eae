"""The kinds of entry a plain file makes: an image file (its pixels to the model, or kept by a
classic codec), stored bytes (anything else, or a JPEG as its JPEG XL transcode) and a symbolic
link."""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from . import classic, jpegxl, sources
from .entry_kind import ATTRIBUTES, Entry, EntryKind
from .fingerprint import Fingerprint
from .xz import unxz, xz


# A mode with alpha: the model codes its colour, and the alpha plane is the entry's blob, kept
# by the classic codec that keeps it smallest (PNG, WebP or JPEG XL; mostly a constant or a
# few edges, which they keep in a few bytes). Fully transparent pixels keep their colour.
ALPHA_MODES = {"RGBA": "RGB", "LA": "L"}


class ImageFile(EntryKind):
    """A plain 8-bit (or 1-bit grey) PNG or 8-bit PNM: its one image to the model ("model"; a
    mode with alpha: its colour, and its alpha plane as a classic blob), or kept as the smallest
    lossless PNG, WebP or JPEG XL that decodes to exactly its pixels ("classic", cli/classic.py),
    and written back in its own format and mode."""

    name = "image"
    stores = frozenset({"model", "classic"})
    required = frozenset({"mode", "width", "height"})
    optional = frozenset({"codec", "scale", "crc32"}) | ATTRIBUTES

    @staticmethod
    def read(name: str, raw: bytes, image: Image.Image, fits_model) -> Entry:
        """`image` is `raw` opened; a JPEG becomes a transcode, an image whose metadata or depth a
        re-encoding would lose is stored as bytes."""
        meta = {"format": image.format, "mode": image.mode, "width": image.width, "height": image.height}
        if image.format == "JPEG":
            return Stored.transcoded(name, raw, meta)
        if not _rewritable(raw, image):
            return Stored.read(name, raw, meta)
        if image.mode in ("L", "1", "RGB", *ALPHA_MODES):
            pixels = np.asarray(image, dtype=np.uint8)
            colour = colour_of(pixels, image.mode)
            if fits_model(colour[None]):
                if image.mode not in ALPHA_MODES:
                    return Entry(name, ImageFile, {**meta, "store": "model"}, items=pixels[None])
                codec, blob = classic.smallest_faithful(Image.fromarray(np.ascontiguousarray(pixels[..., -1]), mode="L"))
                return Entry(name, ImageFile, {**meta, "store": "model", "codec": codec}, items=colour[None], blobs=[blob],
                             fingerprint=Fingerprint(pixels))
        found = classic.smallest_faithful(image)
        if found is None:
            return Stored.read(name, raw, meta)
        return ImageFile.classic(name, meta, image, *found)

    @staticmethod
    def classic(name: str, meta, image: Image.Image, codec: str, blob: bytes) -> Entry:
        """An image entry kept as `codec`'s blob (checked to decode to `image`)."""
        return Entry(name, ImageFile, {**meta, "store": "classic", "codec": codec}, blobs=[blob],
                     fingerprint=Fingerprint(classic.pixel_bytes(image)))

    @staticmethod
    def image_shape(meta) -> tuple[int, ...]:
        """Of its model image: a mode with alpha's colour."""
        colour = ALPHA_MODES.get(meta.get("mode"), meta.get("mode"))
        return (meta["height"], meta["width"], 3) if colour == "RGB" else (meta["height"], meta["width"])

    @staticmethod
    def image_count(meta) -> int:
        return 1 if meta.get("store") == "model" else 0

    @staticmethod
    def restore(meta, feed, blobs: list, sink) -> Fingerprint:
        fingerprint = Fingerprint()
        if meta["store"] == "model":
            pixels = _with_alpha(feed.whole(1)[0], meta, blobs[0] if blobs else None)
            fingerprint.update(pixels)
            if sink is None:  # checked only (compress's check, `bbzip test`): no image to make
                return fingerprint
            image = model_image(pixels, meta["mode"])
        else:
            image = classic.decode(blobs[0], meta["codec"], meta["mode"], meta["width"], meta["height"])
            fingerprint.update(classic.pixel_bytes(image))
        if sink is not None:  # encoded here, then written: PIL would write past the sink to its file
            encoded = io.BytesIO()
            image.save(encoded, format=meta["format"])
            sink.write(encoded.getvalue())
        return fingerprint


def model_image(pixels: np.ndarray, mode: str) -> Image.Image:
    """Pixels (H, W) or (H, W, C) uint8 as an image of the file's mode: "1" (0 black, anything
    else white), "L", "RGB", "LA" or "RGBA"."""
    return Image.fromarray(pixels.astype(bool)) if mode == "1" else Image.fromarray(pixels, mode=mode)


def colour_of(pixels: np.ndarray, mode: str) -> np.ndarray:
    """What the model codes of an image's pixels: all of them, or a mode with alpha's colour."""
    if mode not in ALPHA_MODES:
        return pixels
    return pixels[..., :3] if mode == "RGBA" else pixels[..., 0]


def pixels_as_read(entry: Entry) -> np.ndarray:
    """An image entry's pixels in its own mode: its model image (an array, or one read back as
    needed: cli/sources.py), with its alpha plane back for a mode with alpha."""
    blob = entry.blobs[0] if entry.blobs else None
    colour = np.asarray(entry.items[0:1])[0]
    return _with_alpha(colour, entry.meta, blob if blob is None or isinstance(blob, bytes) else blob.read())


def stack_as_read(entry: Entry):
    """An image entry's pixels in its own mode as a stack of one image (1, H, W[, C]), read only
    when a slice is asked for."""
    mode = entry.meta["mode"]
    if mode not in ALPHA_MODES:
        return entry.items
    shape = (1, entry.meta["height"], entry.meta["width"], Image.getmodebands(mode))
    return sources.MadeWhenRead(shape, lambda: pixels_as_read(entry)[None])


def _with_alpha(colour: np.ndarray, meta, blob: bytes | None) -> np.ndarray:
    """An image entry's pixels in its mode from its model image: a mode with alpha gets its
    alpha plane back from its blob."""
    if meta["mode"] not in ALPHA_MODES:
        return colour
    alpha = classic.decode(blob, meta["codec"], "L", meta["width"], meta["height"])
    return np.dstack([colour, np.asarray(alpha, dtype=np.uint8)])


def alpha_bytes(entry: Entry) -> int:
    """Bytes of an image entry's alpha plane blob (0 for a mode without alpha)."""
    return len(entry.blobs[0]) if entry.kind is ImageFile and entry.meta.get("mode") in ALPHA_MODES else 0


class Stored(EntryKind):
    """A file kept byte for byte, xz-compressed ("stored"), or a JPEG file as the JPEG XL
    transcode that gives back its exact bytes ("transcoded")."""

    name = "stored"
    stores = frozenset({"stored", "transcoded"})
    required = frozenset({"size"})
    optional = frozenset({"mode", "width", "height", "crc32"}) | ATTRIBUTES

    @staticmethod
    def read(name: str, raw: bytes, meta) -> Entry:
        return Entry(name, Stored, {**meta, "store": "stored", "size": len(raw)}, blobs=[xz(raw)], fingerprint=Fingerprint(raw))

    @staticmethod
    def transcoded(name: str, raw: bytes, meta) -> Entry:
        """A JPEG file as the JPEG XL transcode that gives back its bytes, if there is one and it
        is smaller than xz would keep the file in; else the file's bytes."""
        stored = Stored.read(name, raw, meta)
        mode = meta["mode"] if meta["mode"] in jpegxl.MODES else None
        blob = jpegxl.transcode_jpeg(raw, mode, meta["width"], meta["height"]) if mode else None
        if blob is None or len(blob) >= len(stored.blobs[0]):
            return stored
        return Entry(name, Stored, {**meta, "store": "transcoded", "size": len(raw)}, blobs=[blob], fingerprint=Fingerprint(raw))

    @staticmethod
    def least_bytes(meta) -> int:
        return meta["size"]

    @staticmethod
    def restore(meta, feed, blobs: list, sink) -> Fingerprint:
        if meta["store"] == "stored":
            raw = unxz(blobs[0], meta["size"])
        else:
            raw = jpegxl.reconstruct_jpeg(blobs[0], meta["width"], meta["height"])
            if len(raw) != meta["size"]:
                raise ValueError("transcoded JPEG does not have the declared size")
        if sink is not None:
            sink.write(raw)
        return Fingerprint(raw)


class Link(EntryKind):
    """A symbolic link, kept as its target (never followed); the caller makes the link."""

    name = "link"
    stores = frozenset({"link"})
    required = frozenset({"target"})
    extras = ("target",)

    @staticmethod
    def read(name: str, path) -> Entry:
        return Entry(name, Link, {"format": "LINK", "store": "link", "target": os.readlink(path)})

    @staticmethod
    def restore(meta, feed, blobs: list, sink) -> Fingerprint:
        return Fingerprint(meta["target"].encode())


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
