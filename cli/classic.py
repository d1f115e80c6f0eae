"""The classic lossless codecs images are kept with when the model does not take them: PNG,
WebP and JPEG XL, whichever is smallest of those that decode to exactly the same mode and
pixels (each candidate is decoded and compared before it is chosen).

Decoding only ever opens a blob as the codec its entry names, and checks the image's size
against the entry before any pixel is decoded, so a hostile archive cannot reach another
Pillow plugin or make bbzip decode an image larger than its entry says.
"""
from __future__ import annotations

import io

from PIL import Image

from . import jpegxl

CODECS = ("PNG", "WEBP", "JXL")
# WebP holds RGB(A): a grey image goes in as RGB and comes back as L (exact, R = G = B).
_WEBP_MODES = {"RGB": "RGB", "RGBA": "RGBA", "L": "RGB"}
# JPEG XL holds grey and colour, with or without alpha; a bitmap goes in as 0/255 grey.
_JXL_MODES = {mode: mode for mode in jpegxl.MODES} | {"1": "L"}
WEBP_METHOD = 4  # method 6 is 30x slower for 0.6% on MNIST-sized images
# From this many pixels on, PNG and WebP spend less effort: a photo's smallest classic encoding
# is nearly always JPEG XL's (or the model beats all three), and their thorough settings (PNG's
# optimize pass, WebP's quality 100) take several times as long for a percent or two. Small
# images, where PNG or WebP often win, keep the thorough ones (README, "Where the time goes").
LARGE_IMAGE_PIXELS = 1 << 16
# A photo (of LARGE_IMAGE_PIXELS up to THOROUGH_JXL_PIXELS) whose smallest encoding is JPEG
# XL's, and that a classic codec keeps or nearly (within THOROUGH_JXL_MARGIN of the model's
# cost), gets a second JPEG XL try at effort 9: 1 to 3.5% smaller on the test photos than
# effort 7, and four to six times as slow, so only the photos that go classic, or may, pay for
# it; and not the larger ones, where it takes seconds (a 1024x683 photo: about 3.5 s a core)
# for what is at best as much.
THOROUGH_JXL_EFFORT = 9
THOROUGH_JXL_PIXELS = 1 << 19
THOROUGH_JXL_MARGIN = 0.03


def plain_png(image: Image.Image) -> bytes:
    """The image as PNG without the optimize pass."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png(image: Image.Image, plain: bytes | None = None) -> bytes:
    """The image as PNG, at the effort its size gets: a large image's is its plain PNG
    (`plain`, if already made)."""
    if not is_large(image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()
    return plain if plain is not None else plain_png(image)


def is_large(image: Image.Image) -> bool:
    return image.width * image.height >= LARGE_IMAGE_PIXELS


def encodings(image: Image.Image, plain: bytes | None = None, codecs=CODECS) -> list[tuple[str, bytes]]:
    """Each of `codecs`'s lossless encoding of the image that its mode allows (unchecked);
    `plain`, if given, is `plain_png(image)`, already made."""
    found = []
    if "PNG" in codecs:
        found.append(("PNG", png(image, plain)))
    if "WEBP" in codecs and image.mode in _WEBP_MODES:
        webp = io.BytesIO()
        try:
            # exact: keep the colour under fully transparent pixels (WebP drops it by default)
            image.convert(_WEBP_MODES[image.mode]).save(webp, format="WEBP", lossless=True,
                                                       quality=75 if is_large(image) else 100,
                                                       method=WEBP_METHOD, exact=True)
            found.append(("WEBP", webp.getvalue()))
        except (OSError, KeyError):  # Pillow built without WebP
            pass
    if "JXL" in codecs and image.mode in _JXL_MODES:
        found.append(("JXL", _jxl(image)))
    return found


def _jxl(image: Image.Image, effort: int = jpegxl.EFFORT) -> bytes:
    """The image as lossless JPEG XL, at `effort`."""
    inner = image.convert(_JXL_MODES[image.mode])
    return jpegxl.encode_lossless(inner.mode, inner.width, inner.height, inner.tobytes(), effort=effort)


def smallest_faithful(image: Image.Image, below: float | None = None, plain: bytes | None = None,
                      codecs=CODECS, sizes: dict | None = None) -> tuple[str, bytes] | None:
    """(codec, blob): the smallest encoding (of `codecs`) that decodes to exactly the image
    (mode and pixels); None if none does, or (with `below`) none shorter than `below` bytes.
    Candidates are decoded smallest first, so usually only the one chosen is, and none where the
    smallest is not below `below` (the fallback's photos, which the model codes smaller).
    `sizes`: a dict, or None; each encoding's length in bytes, by codec, goes into it."""
    expected = None
    found = sorted(encodings(image, plain, codecs), key=lambda found: len(found[1]))  # stable: ties keep CODECS order
    if sizes is not None:
        sizes.update((codec, len(blob)) for codec, blob in found)
    thorough = _thorough_jxl(image, found, below)
    for codec, blob in ([thorough] if thorough else []) + found:
        if below is not None and len(blob) >= below:
            return None
        expected = expected or pixel_bytes(image)
        if _decodes_to(blob, codec, image, expected):
            return codec, blob
    return None


def _thorough_jxl(image: Image.Image, found: list[tuple[str, bytes]], below: float | None) -> tuple[str, bytes] | None:
    """("JXL", blob) at THOROUGH_JXL_EFFORT where that is smaller than the smallest of `found`
    (the encodings tried, smallest first), for a photo whose smallest is JPEG XL's and that a
    classic codec keeps or may keep (`below`: the model's cost); else None."""
    if not found or found[0][0] != "JXL" or not LARGE_IMAGE_PIXELS <= image.width * image.height <= THOROUGH_JXL_PIXELS:
        return None
    smallest = len(found[0][1])
    if below is not None and smallest >= below * (1 + THOROUGH_JXL_MARGIN):
        return None
    blob = _jxl(image, THOROUGH_JXL_EFFORT)
    return ("JXL", blob) if len(blob) < smallest else None


def _decodes_to(blob: bytes, codec: str, image: Image.Image, expected: bytes) -> bool:
    try:
        return pixel_bytes(decode(blob, codec, image.mode, image.width, image.height)) == expected
    except (OSError, ValueError, SyntaxError):
        return False


def decode(blob: bytes, codec: str, mode: str, width: int, height: int) -> Image.Image:
    """The image a blob holds, in `mode`; a ValueError if it is another size or cannot be
    brought to that mode exactly (compress checked that it can)."""
    if codec == "JXL":
        stored_mode, pixels = jpegxl.decode_pixels(blob, width, height)
        image = Image.frombytes(stored_mode, (width, height), pixels)
    elif codec in ("PNG", "WEBP"):
        try:
            image = Image.open(io.BytesIO(blob), formats=[codec])
        except Image.DecompressionBombError:  # Pillow's own check, before ours: no image bbzip writes is this large
            raise ValueError("stored image is larger than any bbzip writes") from None
        if image.size != (width, height):  # checked before decoding: no bombs
            raise ValueError("stored image has another size than the header says")
        image.load()
    else:
        raise ValueError(f"unknown codec {codec!r}")
    if image.mode != mode:
        if (image.mode, mode) not in (("RGB", "L"), ("L", "1")):
            raise ValueError(f"stored image decoded in mode {image.mode}, expected {mode}")
        image = image.convert(mode)
    return image


def pixel_bytes(image: Image.Image) -> bytes:
    """What two images must share to be the same: their mode and their pixels."""
    return image.mode.encode() + b":" + image.tobytes()
