"""bbzip's Python API: uint8 images in, bytes out, and back.

    import numpy as np
    from models import api

    images = np.load("digits.npy")                  # (N, 28, 28) uint8
    data = api.compress(images, k_steps=0)          # bytes; the shipped model that fits
    assert np.array_equal(api.decompress(data), images)

The bytes are a self-describing *model stream record* (the command line's archives hold one):

    magic    6 bytes  b"\\x89BBZM\\n"
    header   u32 LE length, then deflated UTF-8 JSON: model (name, sha256, architecture,
             config), numerics version, coding settings, image count, scale (pixel = symbol x scale)
    crc32    u32 LE of the header bytes
    stream   the bits-back message
    sha256   32 bytes over the decoded images (uint8, C order)

`decompress` checks the header against a schema before acting on any of it, decodes, and checks
the sha256; every failure is a `StreamError` with a one-line message.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bbans import BBANSError

from . import stream
from .architectures import NUMERICS_VERSION, ModelFileError
from .coding_settings import CodingSettings, SettingsError
from .coder_choice import Coder, default_settings, load_coder, pick_default, resolve

MAGIC = b"\x89BBZM\n"
MAX_HEADER = 1 << 16
MAX_IMAGES = 1 << 24  # images in one record


class StreamError(Exception):
    """A record that is not a model stream, is damaged, or needs a model that is not here."""


@dataclass(frozen=True)
class StreamInfo:
    """What a record's header says, checked."""

    model: dict
    settings: CodingSettings
    images: int
    scale: int
    stream: bytes
    digest: bytes


def compress(images: np.ndarray, *, model: str | None = None, k_steps: int = 0, lr: float = 5e-3, seed: int = 0,
             batch_size: int | None = None, on_batch=None) -> bytes:
    """A record of the uint8 images (N, H, W): `model` a shipped name or a .safetensors path
    (default: the shipped model that fits). The settings are those of `bbzip compress`."""
    images = np.ascontiguousarray(images)
    coder = load_coder(model) if model else pick_default(images)
    if coder is None:
        raise StreamError("no shipped model codes these images (28x28 uint8 images, grey or two-valued)")
    if not coder.model.accepts(images):
        raise StreamError(f"{coder.name} does not code uint8 images of shape {images.shape[1:]} "
                          f"({'two-valued ' if coder.model.config.likelihood == 'bernoulli' else ''}"
                          f"{coder.model.config.height}x{coder.model.config.width} expected)")
    settings = default_settings(coder, len(images), k_steps=k_steps, lr=lr, seed=seed, batch_size=batch_size)
    return encode_record(coder, images, settings, on_batch)


def encode_record(coder: Coder, images: np.ndarray, settings: CodingSettings, on_batch=None) -> bytes:
    symbols, scale = coder.model.to_symbols(images)
    message = stream.encode(coder.model, symbols, settings, on_batch) if len(images) else b""
    header = {"model": coder.describe(), "numerics": NUMERICS_VERSION, "coding": settings.to_dict(),
              "images": int(len(images)), "scale": int(scale)}
    header_bytes = zlib.compress(json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), 9)
    return b"".join([MAGIC, struct.pack("<I", len(header_bytes)), header_bytes, struct.pack("<I", zlib.crc32(header_bytes)),
                     message, hashlib.sha256(images.tobytes()).digest()])


def decompress(data: bytes, *, model: str | Path | Coder | None = None, on_batch=None) -> np.ndarray:
    """The images of a record, exactly; `model` is needed only for a model that is not shipped
    (a spec, or the Coder that wrote the record)."""
    info = read_record(data)
    try:
        coder = resolve(info.model, model)
    except ModelFileError as error:
        raise StreamError(str(error)) from None
    config = coder.model.config
    if info.images == 0:
        images = np.zeros((0, config.height, config.width), dtype=np.uint8)
    else:
        try:
            symbols = stream.decode(coder.model, info.stream, info.images, info.settings, on_batch)
        except BBANSError as error:
            raise StreamError(f"damaged model stream ({error})") from None
        images = coder.model.from_symbols(symbols, info.scale)
    if hashlib.sha256(images.tobytes()).digest() != info.digest:
        raise StreamError("decoded images do not match the stream's sha256 (damaged archive)")
    return images


def read_record(data: bytes) -> StreamInfo:
    """Parse and check a record's framing and header (no decoding)."""
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise StreamError("not a bbzip model stream")
    position = len(MAGIC)
    if len(data) < position + 4:
        raise StreamError("truncated model stream")
    (length,) = struct.unpack_from("<I", data, position)
    position += 4
    if length > MAX_HEADER or len(data) < position + length + 4 + 32:
        raise StreamError("truncated or damaged model stream header")
    header_bytes = data[position : position + length]
    (crc,) = struct.unpack_from("<I", data, position + length)
    if zlib.crc32(header_bytes) != crc:
        raise StreamError("damaged model stream (header checksum mismatch)")
    try:
        inflater = zlib.decompressobj()
        header = json.loads(inflater.decompress(header_bytes, MAX_HEADER))
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("the header does not inflate to a bounded, complete document")
    except (ValueError, zlib.error):
        raise StreamError("damaged model stream (header is not valid)") from None
    return _checked(header, data[position + length + 4 : -32], data[-32:])


def _checked(header, message: bytes, digest: bytes) -> StreamInfo:
    """The header against its schema: exact keys, types and bounds, before anything acts on it."""
    if not isinstance(header, dict) or set(header) != {"model", "numerics", "coding", "images", "scale"}:
        raise StreamError("damaged model stream (unexpected header fields)")
    if header["numerics"] != NUMERICS_VERSION:
        raise StreamError(f"model stream made with numerics version {header['numerics']!r}; "
                          f"this bbzip decodes version {NUMERICS_VERSION}")
    model = header["model"]
    if not isinstance(model, dict) or set(model) != {"name", "sha256", "architecture", "config"} or \
            not isinstance(model["sha256"], str) or len(model["sha256"]) != 64 or not isinstance(model["name"], str):
        raise StreamError("damaged model stream (bad model description)")
    try:
        settings = CodingSettings.from_dict(header["coding"])
    except (SettingsError, TypeError) as error:
        raise StreamError(f"damaged model stream ({error})") from None
    images, scale = header["images"], header["scale"]
    if not _is_int(images) or not 0 <= images <= MAX_IMAGES:
        raise StreamError("damaged model stream (image count out of bounds)")
    if not _is_int(scale) or scale not in (1, 255):
        raise StreamError("damaged model stream (bad pixel scale)")
    return StreamInfo(model, settings, images, scale, message, digest)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
