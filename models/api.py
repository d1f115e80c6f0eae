"""bbzip's Python API: uint8 images in, bytes out, and back.

    import numpy as np
    from bbzip.models import api

    images = np.load("digits.npy")                  # (N, 28, 28) uint8
    data = api.compress(images, k_steps=0)          # bytes; the shipped model that fits
    assert np.array_equal(api.decompress(data), images)

The bytes are a self-describing *model stream record* (the command line's archives hold one):

    magic    6 bytes  b"\\x89BBZM\\n"
    header   u32 LE length, then UTF-8 JSON deflated by zlib with a preset dictionary
             (models/record_dictionary.py; without one before archive format 7): model (name,
             sha256, architecture, config), numerics version, coding settings, image count,
             scale (pixel = symbol x scale), block_images
    crc32    u32 LE of the header bytes
    blocks   ceil(images / block_images) of them, each: u32 LE length, that block's bits-back
             message (models.blocks), 32 bytes sha256 of the block's index (u64 LE) then its
             decoded images (uint8, C order): a block moved or repeated does not match

`decompress` checks the header against a schema before acting on any of it, decodes, and checks
each block's sha256; every failure is a `StreamError` with a one-line message. Blocks are
independent: `decode_blocks` decodes the ones asked for, and reports a damaged one without
losing the others.
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import blocks, threads
from .architectures import NUMERICS_VERSION, ModelFileError
from .coding_settings import CodingSettings, SettingsError
from .files import ByteSource
from .record_dictionary import RECORD_DICTIONARY
from .tiling import tile_count
from .coder_choice import Coder, default_block_images, default_codes, default_settings, load_coder, pick_default, resolve

MAGIC = b"\x89BBZM\n"
MAX_HEADER = 1 << 16
MAX_IMAGES = 1 << 24  # images in one record
HEADER_FIELDS = {"model", "numerics", "coding", "images", "scale", "block_images"}
# A record of a model that codes images of any size holds their tiles; one written from a stack
# says the stack's image size (a command-line archive's entries say their own sizes instead).
OPTIONAL_FIELDS = {"image_shape", "block_digest", "block_tiles"}
# Each block's digest is the sha256 of its index (u64 LE) then its decoded images, so a block
# moved to another place in the record, or repeated, does not match. Records before this say
# nothing and digest the images alone.
BLOCK_DIGEST = "index+images"
# A tiled model's record since archive format 7 says so: a block whose images are all smaller
# than a tile codes as tiles of the square that holds them (models/stream.py); records before
# it code whole tiles.
BLOCK_TILES = "coded-square"
MAX_SIDE = 1 << 16


class StreamError(Exception):
    """A record that is not a model stream, is damaged, or needs a model that is not here."""


@dataclass(frozen=True)
class Block:
    first: int  # index of its first image in the record
    count: int
    message: ByteSource  # read when the block is decoded
    digest: bytes  # sha256 of its index and its decoded images (block_digest)
    number: int  # its index in the record


@dataclass(frozen=True)
class StreamInfo:
    """What a record's header says, checked, and where its blocks are."""

    model: dict
    settings: CodingSettings
    images: int
    scale: int
    block_images: int
    blocks: list[Block]
    image_shape: tuple[int, int] | None = None  # (H, W) of the images whose tiles the record holds
    digests_bind_index: bool = True  # False: a record written before BLOCK_DIGEST
    square_blocks: bool = True  # False: a record written before BLOCK_TILES


def block_digest(number: int, images: np.ndarray, binds_index: bool = True) -> bytes:
    """What a block's 32 digest bytes are: the sha256 of its index then its images (of its
    images alone in records written before BLOCK_DIGEST)."""
    hasher = hashlib.sha256(struct.pack("<Q", number) if binds_index else b"")
    hasher.update(np.ascontiguousarray(images))
    return hasher.digest()


def unit_size(config: dict) -> tuple[int, int]:
    """(height, width) of what one image of a record is, from its model's recorded config: the
    model's image size, or its tile's."""
    return (config["tile"], config["tile"]) if "tile" in config else (config["height"], config["width"])


def unit_values(config: dict) -> int:
    """Coded values (pixels x channels) of one image of a record: what bpd divides by."""
    height, width = unit_size(config)
    return height * width * config.get("channels", 1)


def compress(images: np.ndarray, *, model: str | None = None, k_steps: int = 0, lr: float = 5e-3, seed: int = 0,
             batch_size: int | None = None, block_images: int | None = None, cores: int | None = None,
             on_batch=None) -> bytes:
    """A record of the uint8 images (N, H, W): `model` a shipped name or a .safetensors path
    (default: the shipped model that fits). The settings are those of `bbzip compress`;
    `cores` code the blocks (default: all), with the same bytes for any number."""
    images = np.ascontiguousarray(images)
    coder = load_coder(model) if model else pick_default([images])
    if coder is None:
        raise StreamError(f"no shipped model codes uint8 images of shape {images.shape[1:]} "
                          f"(the defaults code: {', '.join(codes.describe() for _, codes in default_codes())})")
    codes = coder.model.config.codes
    if not coder.model.accepts(images):
        raise StreamError(f"{coder.name} does not code uint8 images of shape {images.shape[1:]} "
                          f"({codes.describe()} expected)")
    image_shape = images.shape[1:3] if codes.any_size else None
    if image_shape and max(image_shape) > MAX_SIDE:
        raise StreamError(f"images of {image_shape[0]}x{image_shape[1]}: at most {MAX_SIDE} pixels a side")
    units = codes.to_units(images)
    block_images = block_images or default_block_images(coder, len(units), k_steps)
    settings = default_settings(coder, len(units), k_steps=k_steps, lr=lr, seed=seed, batch_size=batch_size,
                                block_images=block_images)
    record = io.BytesIO()
    write_record(record.write, coder, units, settings, block_images, cores, on_batch, image_shape,
                 _stack_extents(codes, image_shape, len(images)))
    return record.getvalue()


def _stack_extents(codes, image_shape, count: int) -> np.ndarray | None:
    """The extents of every tile of `count` images of image_shape (None: whole units)."""
    if image_shape is None:
        return None
    return codes.unit_extents(*image_shape, count)


def write_record(write, coder: Coder, images, settings: CodingSettings, block_images: int | None = None,
                 cores: int | None = None, on_batch=None, image_shape: tuple[int, int] | None = None,
                 extents: np.ndarray | None = None, known=None, checked: list | None = None) -> int:
    """Write the record of `images` (an (N, H, W) uint8 array, or anything that gives arrays for
    slices of images: blocks.StackedImages, cli/sources.py) through `write`, block by block as
    they are coded (one wave of blocks is held, not the record); returns its length in bytes.
    `extents` (N, 2): for tiles, the rows and columns of each inside its image (None: all);
    the decoder must be given the same (decode_blocks). `known(lo, hi)`: for a tiled model
    without a latent, (start, freq) of tiles lo..hi's intervals where they were already
    computed (its `intervals`; or their parts, blocks.StackedImages.intervals), else None; or
    `known` None. `checked`: a list, or None: each block is then decoded where it was coded and
    must give back its images (blocks.encode_blocks' check: bbans.CorruptStream if not), and the
    sha256 of each block's message is appended to the list (decode_blocks' `checked`)."""
    block_images = block_images or default_block_images(coder, len(images), settings.k_steps)
    if not 1 <= block_images <= blocks.MAX_BLOCK_IMAGES:
        raise StreamError(f"block_images must be in 1..{blocks.MAX_BLOCK_IMAGES}")
    bounds = blocks.block_bounds(len(images), block_images)
    scale = _record_scale(coder, images, bounds)
    header = {"model": coder.describe(), "numerics": NUMERICS_VERSION, "coding": settings.to_dict(),
              "images": int(len(images)), "scale": int(scale), "block_images": int(block_images),
              "block_digest": BLOCK_DIGEST}
    if hasattr(coder.model, "block_square"):
        header["block_tiles"] = BLOCK_TILES
    if image_shape is not None:
        header["image_shape"] = [int(side) for side in image_shape]
    header_bytes = deflate_header(header)
    written = write(MAGIC + struct.pack("<I", len(header_bytes)) + header_bytes + struct.pack("<I", zlib.crc32(header_bytes)))
    digests = []  # each block's, taken as its images are read (each block's images are read once, in order)

    def block_symbols():
        for number, (lo, hi) in enumerate(bounds):
            block = images[lo:hi]
            digests.append(block_digest(number, block))
            yield (coder.model.to_symbols(block, scale)[0], None if extents is None else extents[lo:hi],
                   None if known is None else known(lo, hi))

    messages = blocks.encode_blocks(coder.model, block_symbols(), settings, cores or threads.available_cores(), on_batch,
                                    check=checked is not None)
    for number, message in enumerate(messages):
        if checked is not None:
            message, digest = message
            checked.append(digest)
        written += write(struct.pack("<I", len(message)) + message + digests[number])
    return written


def _record_scale(coder: Coder, images, bounds) -> int:
    """What the model's symbols are multiplied by to give the pixels (one scale for the record,
    found block by block): 255 for a two-valued model's 0/255 images, else 1."""
    codes = coder.model.config.codes
    if not codes.two_valued:
        return 1  # (without reading the images: a record is written as its blocks are read)
    return 255 if 255 in {codes.scale_of(images[lo:hi]) for lo, hi in bounds} else 1


def decompress(data: bytes | ByteSource, *, model: str | Path | Coder | None = None, cores: int | None = None,
               on_batch=None) -> np.ndarray:
    """The images of a record, exactly; `model` is needed only for a model that is not shipped
    (a spec, or the Coder that wrote the record)."""
    info = read_record(data)
    coder = coder_for(info, model)
    codes = coder.model.config.codes
    extents = _stack_extents(codes, info.image_shape, info.images // codes.units_per_image(*info.image_shape)) \
        if info.image_shape else None
    decoded = []
    for number, result in enumerate(decode_blocks(info, coder, cores=cores, on_images=on_batch, extents=extents)):
        if isinstance(result, str):
            raise StreamError(f"block {number}: {result}")
        decoded.append(result)
    units = np.concatenate(decoded) if decoded else np.zeros((0, *codes.shape), dtype=np.uint8)
    return codes.from_units(units, *info.image_shape) if info.image_shape else units


def coder_for(info: StreamInfo, model: str | Path | Coder | None) -> Coder:
    """The model that decodes the record, which must code images of the record's scale."""
    try:
        coder = resolve(info.model, model)
    except ModelFileError as error:
        raise StreamError(str(error)) from None
    if info.scale != 1 and not coder.model.config.codes.two_valued:
        raise StreamError(f"damaged model stream (pixel scale {info.scale} for {coder.model.config.codes.describe()} images)")
    return coder


def decode_blocks(info: StreamInfo, coder: Coder, which=None, cores: int | None = None, on_images=None,
                  extents: np.ndarray | None = None, expected_images=None, checked: list | None = None):
    """Yields the images (n, H, W) of each block in `which` (default: all), in that order, each
    checked against its sha256; a block that cannot be decoded or does not match gives the
    reason (a str) instead, and the others are still decoded. Blocks are read and decoded a
    wave (one per core) at a time, as the results are taken. `extents`: the record's, as
    write_record was given them. `expected_images`: the record's images as write_record was
    given them, for a check that the record holds them (compress's): a model that can then
    checks each block against them without searching for its symbols (stream.decode), which
    gives what decoding gives where they match and the reason where they do not. Where they
    carry the intervals they were coded by (`intervals(lo, hi)`: blocks.StackedImages), a
    tiled model checks against those (models/tile_intervals.py). `checked`, with them: the
    digests write_record's `checked` gave, by which a block whose message is the one checked
    where it was coded gives its images without being decoded again (each still checked
    against its sha256 here)."""
    chosen = [info.blocks[i] for i in (range(len(info.blocks)) if which is None else which)]
    if extents is not None and len(extents) != info.images:
        raise StreamError(f"damaged model stream ({info.images} images, their entries say {len(extents)})")
    parts = None if extents is None else [extents[b.first : b.first + b.count] for b in chosen]
    expected = None if expected_images is None else (
        coder.model.to_symbols(expected_images[b.first : b.first + b.count], info.scale)[0] for b in chosen)
    intervals = getattr(expected_images, "intervals", None)
    known = None if intervals is None else (intervals(b.first, b.first + b.count) for b in chosen)
    digests = None if expected is None or checked is None else (
        checked[b.number] if b.number < len(checked) else None for b in chosen)
    symbols = blocks.decode_blocks(coder.model, (_message(b) for b in chosen), [b.count for b in chosen], info.settings,
                                   cores or threads.available_cores(), on_images, parts, info.square_blocks, expected,
                                   known, digests)
    for block, decoded in zip(chosen, symbols):
        if isinstance(decoded, str):
            yield f"damaged model stream ({decoded})"
            continue
        images = coder.model.from_symbols(decoded, info.scale)
        if block_digest(block.number, images, info.digests_bind_index) != block.digest:
            yield "decoded images do not match the block's sha256 (damaged archive)"
        else:
            yield images


def _message(block: Block) -> bytes:
    try:
        return block.message.read()
    except EOFError as error:
        raise StreamError(f"model stream: {error}") from None


def read_record(source: bytes | ByteSource) -> StreamInfo:
    """Parse and check a record's framing, header and block layout (nothing is decoded, and
    of the blocks only their lengths and digests are read)."""
    source = source if isinstance(source, ByteSource) else ByteSource(bytes(source))
    data = source.read(0, min(len(source), len(MAGIC) + 8 + MAX_HEADER))
    if not data.startswith(MAGIC):
        raise StreamError("not a bbzip model stream")
    position = len(MAGIC)
    if len(data) < position + 4:
        raise StreamError("truncated model stream")
    (length,) = struct.unpack_from("<I", data, position)
    position += 4
    if length > MAX_HEADER or len(source) < position + length + 4:
        raise StreamError("truncated or damaged model stream header")
    header_bytes = data[position : position + length]
    (crc,) = struct.unpack_from("<I", data, position + length)
    if zlib.crc32(header_bytes) != crc:
        raise StreamError("damaged model stream (header checksum mismatch)")
    return _checked(inflate_header(header_bytes), source, position + length + 4)


def deflate_header(header: dict) -> bytes:
    """A record header's stored bytes: its JSON deflated with RECORD_DICTIONARY."""
    deflater = zlib.compressobj(9, zdict=RECORD_DICTIONARY)
    return deflater.compress(json.dumps(header, sort_keys=True, separators=(",", ":")).encode()) + deflater.flush()


def inflate_header(header_bytes: bytes):
    """The JSON document of a record header's stored bytes (not yet checked against the
    schema); StreamError if they do not inflate to one within MAX_HEADER bytes."""
    try:
        # Headers written before format 7 were deflated without the dictionary: their zlib
        # stream does not ask for it, and inflates as before.
        inflater = zlib.decompressobj(zdict=RECORD_DICTIONARY)
        header = json.loads(inflater.decompress(header_bytes, MAX_HEADER))
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("the header does not inflate to a bounded, complete document")
    except (ValueError, RecursionError, zlib.error):  # RecursionError: nested deeper than any header is
        raise StreamError("damaged model stream (header is not valid)") from None
    return header


def _flat_config(config) -> bool:
    """A model config as archives record it: names to numbers and short strings, with the image
    size every config has (what `list` shows without loading the model)."""
    return isinstance(config, dict) and len(config) <= 64 and all(
        isinstance(key, str) and (isinstance(value, (int, float, bool)) or isinstance(value, str) and len(value) <= 64)
        for key, value in config.items()) and \
        all(_is_int(config.get(side)) and config[side] > 0 for side in (("tile",) if "tile" in config else ("height", "width")))


def _checked(header, source: ByteSource, position: int) -> StreamInfo:
    """The header against its schema: exact keys, types and bounds, before anything acts on it;
    then the blocks it implies against the bytes that follow."""
    if isinstance(header, dict) and set(header) == HEADER_FIELDS - {"block_images"}:
        raise StreamError("model stream made by bbzip 0.2 (one block, archive format 3); "
                          "this bbzip reads only streams in blocks (archive format 4 and later)")
    if not isinstance(header, dict) or not HEADER_FIELDS <= set(header) <= HEADER_FIELDS | OPTIONAL_FIELDS:
        raise StreamError("damaged model stream (unexpected header fields)")
    if header["numerics"] != NUMERICS_VERSION:
        shown = header["numerics"] if _is_int(header["numerics"]) and 0 <= header["numerics"] < 1 << 32 else "(not a version)"
        raise StreamError(f"model stream made with numerics version {shown}; "
                          f"this bbzip decodes version {NUMERICS_VERSION}")
    model = header["model"]
    if not isinstance(model, dict) or set(model) != {"name", "sha256", "architecture", "config"} or \
            not isinstance(model["sha256"], str) or len(model["sha256"]) != 64 or not isinstance(model["name"], str) or \
            not isinstance(model["architecture"], str) or not _flat_config(model["config"]):
        raise StreamError("damaged model stream (bad model description)")
    try:
        settings = CodingSettings.from_dict(header["coding"])
    except (SettingsError, TypeError) as error:
        raise StreamError(f"damaged model stream ({error})") from None
    images, scale, block_images = header["images"], header["scale"], header["block_images"]
    if not _is_int(images) or not 0 <= images <= MAX_IMAGES:
        raise StreamError("damaged model stream (image count out of bounds)")
    if not _is_int(scale) or scale not in (1, 255):
        raise StreamError("damaged model stream (bad pixel scale)")
    if not _is_int(block_images) or not 1 <= block_images <= blocks.MAX_BLOCK_IMAGES:
        raise StreamError("damaged model stream (bad block size)")
    image_shape = header.get("image_shape")
    if image_shape is not None:
        if not isinstance(image_shape, list) or len(image_shape) != 2 or \
                not all(_is_int(side) and 1 <= side <= MAX_SIDE for side in image_shape):
            raise StreamError("damaged model stream (bad image shape)")
        image_shape = tuple(image_shape)
        tile = model["config"].get("tile")
        if not _is_int(tile) or images % tile_count(image_shape, tile):
            raise StreamError("damaged model stream (tile count does not fit the image shape)")
    found = []
    for lo in range(0, images, block_images):  # every block takes at least 36 bytes: bounded by len(source)
        hi = min(lo + block_images, images)
        if len(source) < position + 4:
            raise StreamError("truncated model stream (blocks)")
        (length,) = struct.unpack("<I", source.read(position, 4))
        if len(source) < position + 4 + length + 32:
            raise StreamError("truncated model stream (blocks)")
        found.append(Block(lo, hi - lo, source.part(position + 4, length), source.read(position + 4 + length, 32), len(found)))
        position += 4 + length + 32
    if position != len(source):
        raise StreamError("damaged model stream (bytes after the last block)")
    if header.get("block_digest", BLOCK_DIGEST) != BLOCK_DIGEST:
        raise StreamError("damaged model stream (unknown block digest)")
    if header.get("block_tiles", BLOCK_TILES) != BLOCK_TILES:
        raise StreamError("damaged model stream (unknown block tiles)")
    return StreamInfo(model, settings, images, scale, block_images, found, image_shape, "block_digest" in header,
                      "block_tiles" in header)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
