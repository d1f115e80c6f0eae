"""Compressing entries into an archive and back: model choice, settings, the two streams.

The images of every model entry go, in entry order, into one model stream record
(models.api): it names the model by sha256 and carries the coding settings and the numerics
version, so the archive's own header only says which entry owns which images.
"""
from __future__ import annotations

import bisect
import lzma
import zlib
from dataclasses import dataclass, field

import numpy as np

from models import api
from models.interface import as_zero_one, binary_scale
from models.blocks import StackedImages
from models.coder_choice import DEFAULT_MODELS, Coder, load_coder

from . import classic, fallback
from .archive import Archive, ArchiveError
from .entries import Entry, classic_image_entry, file_attributes, input_fingerprint, model_image, restore
from .errors import BBZipError
from .table import CHECKED_STORES, FALLBACK_CODES


def fits(model):
    """Whether one entry's uint8 stack (N, H, W) can go to `model`."""
    return model.accepts


def fits_any_shipped(stack: np.ndarray) -> bool:
    """Before a model is chosen: the shipped models' size, grey or two-valued."""
    return stack.dtype == np.uint8 and stack.ndim == 3 and stack.shape[1:] == (28, 28)


def choose_default(entries: list[Entry]) -> Coder | None:
    """The shipped model that fits: binary if every model entry is two-valued, else grey."""
    stacks = [e.items for e in entries if len(e.items)]
    if not stacks:
        return None
    return load_coder(DEFAULT_MODELS["bernoulli" if all(binary_scale(s) for s in stacks) else "logistic"])


def _model_symbols_as_images(entry: Entry, coder: Coder) -> np.ndarray:
    """An entry's images in the model's domain: two-valued entries as 0/1 for a binary model
    (each entry keeps its own scale, 1 or 255, in its metadata)."""
    stack = entry.items
    if coder.model.config.likelihood == "bernoulli":
        stack, entry.meta["scale"] = as_zero_one(stack)
    return stack


def prepare(entries: list[Entry], coder: Coder, settings, use_fallback: bool = True, cores: int = 1,
            on_images=None) -> None:
    """Bring every entry's model images into the model's domain and, with `use_fallback`, take
    out those the classic codecs keep smaller (cli/fallback.py): a single image becomes a
    classic entry, an array or .npz keeps them as classic blobs beside its model images."""
    holders = [e for e in entries if len(e.items)]
    for entry in holders:
        entry.fingerprint = input_fingerprint(entry)  # of what was read, before the images change
        entry.items = _model_symbols_as_images(entry, coder)
    if not use_fallback or not holders:
        return
    chosen = fallback.route(coder.model, StackedImages([e.items for e in holders]), settings, cores, on_images)
    order, first = sorted(chosen), 0
    for entry in holders:  # each entry's share of the chosen images, found by bisection
        count = len(entry.items)
        mine = {order[i] - first: chosen[order[i]]
                for i in range(bisect.bisect_left(order, first), bisect.bisect_left(order, first + count))}
        first += count
        if mine:
            _take_out(entry, mine)


def _take_out(entry: Entry, chosen: dict[int, tuple[str, bytes]]) -> None:
    if entry.kind == "image":  # its one image: kept as the smallest faithful encoding of its own mode
        pixels = entry.items[0] * np.uint8(entry.meta.get("scale", 1))
        image = model_image(pixels, entry.meta["mode"])
        found = classic.smallest_faithful(image)
        if found is None:  # PNG keeps every grey or 1-bit image, so this does not happen; the model then does
            return
        meta = {key: value for key, value in entry.meta.items() if key not in ("store", "scale")}
        replaced = classic_image_entry(entry.name, meta, image, *found)
        entry.meta, entry.items, entry.blobs, entry.fingerprint = replaced.meta, replaced.items, replaced.blobs, replaced.fingerprint
        return
    indices = sorted(chosen)
    taken = entry.items[indices]
    entry.items = np.delete(entry.items, indices, axis=0)
    entry.meta["fallback"] = {"runs": _runs(indices), "codecs": "".join(FALLBACK_CODES[chosen[i][0]] for i in indices),
                              "crc32": zlib.crc32(np.ascontiguousarray(taken))}
    entry.blobs += [chosen[i][1] for i in indices]


def _runs(indices: list[int]) -> list[int]:
    """Sorted indices as [gap, length, gap, length, ...]: each run of consecutive indices, after
    the gap since the previous run's end (a few numbers where images go to classic in runs)."""
    runs, end = [], 0
    for index in indices:
        if runs and index == end:
            runs[-1] += 1
        else:
            runs += [index - end, 1]
        end = index + 1
    return runs


def fallback_positions(runs: list[int]) -> list[int]:
    positions, end = [], 0
    for gap, length in zip(runs[::2], runs[1::2]):
        positions += range(end + gap, end + gap + length)
        end += gap + length
    return positions


def build(entries: list[Entry], coder: Coder | None, settings, payload, on_batch=None, cores: int | None = None,
          block_images: int | None = None) -> dict:
    """Write the payload of an archive holding `entries` (after `prepare`) to the binary file
    `payload`, the model stream block by block; returns the header."""
    length = 0
    stacks = []
    if any(len(e.items) for e in entries) and coder is None:
        raise BBZipError("images for the model but no model")
    for entry in entries:
        # Classic images and JPEG transcodes carry a crc32 of their pixels or bytes (the
        # encoding is bbzip's, checked here); model images are covered by their block's sha256,
        # stored bytes by xz's check.
        if entry.meta.get("store") in CHECKED_STORES:
            entry.meta["crc32"] = entry.fingerprint.crc32
        if len(entry.items):
            stacks.append(entry.items)
    header = {"entries": []}
    if stacks:
        images = StackedImages(stacks)
        length = api.write_record(payload.write, coder, images, settings, block_images, cores=cores, on_batch=on_batch)
        header["model_stream"] = {"offset": 0, "length": length, "items": len(images)}
    for entry in entries:
        blobs = []
        for blob in entry.blobs:
            blobs.append({"offset": length, "length": len(blob)})
            length += payload.write(blob)
        header["entries"].append({"name": entry.name, "kind": entry.kind, "items": len(entry.items), "blobs": blobs, **entry.meta})
    header["payload_length"] = length
    return header


def model_description(archive: Archive) -> api.StreamInfo | None:
    """The model stream record's header (model, settings, numerics), checked; None if no images."""
    if "model_stream" not in archive.header:
        return None
    try:
        info = api.read_record(archive.model_stream)
    except EOFError as error:
        raise ArchiveError(f"archive changed while it was read ({error})") from None
    except api.StreamError as error:
        raise BBZipError(f"damaged archive ({error})") from None
    if info.images != archive.header["model_stream"]["items"]:
        raise BBZipError("damaged archive (model stream image count mismatch)")
    return info


@dataclass(frozen=True)
class Restored:
    """One entry, decoded and checked: a file's bytes, or the target of a symbolic link."""

    name: str
    data: bytes | list  # the file's bytes, or pieces of them to write in turn (entries.restore)
    attributes: tuple[int, int] | None  # (permission bits, mtime in ns)
    link_target: str | None = None
    sha256: bytes = field(default=b"", repr=False)  # of the pixels or bytes restored (entries.input_fingerprint)


@dataclass
class Extraction:
    files: list  # the entries asked for that decoded intact, in archive order (Restored, or names where nothing is kept)
    lost: list[tuple[str, str]]  # (name, why) of those that did not


def select(names: list[str], wanted) -> list[int]:
    """Indices of the entries named in `wanted` (a name, or a folder: everything under it); all
    entries if `wanted` is empty. A name that matches nothing is an error."""
    if not wanted:
        return list(range(len(names)))
    chosen = set()
    for pattern in wanted:
        pattern = pattern.rstrip("/")
        matches = [i for i, name in enumerate(names) if name == pattern or name.startswith(pattern + "/")]
        if not matches:
            raise BBZipError(f"{pattern}: not in the archive")
        chosen.update(matches)
    return sorted(chosen)


def extract(archive: Archive, model_override: str | Coder | None = None, on_batch=None, cores: int | None = None,
            wanted=(), rebuild: bool = True) -> Extraction:
    """The entries asked for (default: all), each checked (extract_each, all held at once)."""
    extraction = Extraction([], [])
    for name, result in extract_each(archive, model_override, on_batch, cores, wanted, rebuild):
        if isinstance(result, str):
            extraction.lost.append((name, result))
        else:
            extraction.files.append(result)
    return extraction


def extract_each(archive: Archive, model_override: str | Coder | None = None, on_batch=None, cores: int | None = None,
                 wanted=(), rebuild: bool = True):
    """Yields (name, Restored, or why it is lost) for each entry asked for (default: all), in
    archive order, each checked; only the blocks of the model stream that hold their images are
    decoded, a wave at a time as the entries need them. A damaged block or blob loses only its
    own entries. Without `rebuild`, files are checked but not encoded again (their `data` is
    empty). Raises ArchiveError if the archive file changes while it is read."""
    entries = archive.header["entries"]
    chosen = select(archive.names, wanted)
    starts = np.concatenate([[0], np.cumsum([entries[i]["items"] for i in range(len(entries))])]).astype(np.int64)
    images_of = _decoded_images(archive, model_override, chosen, starts, on_batch, cores)
    for index in chosen:
        meta, name = entries[index], archive.names[index]
        try:
            items = images_of(int(starts[index]), int(starts[index + 1]))
            yield name, _restored(archive, meta, name, items, rebuild)
        except BBZipError as error:
            yield name, str(error)


def _decoded_images(archive, model_override, chosen, starts, on_batch, cores):
    """images_of(lo, hi): model images lo..hi of the archive, from the blocks that hold those of
    the chosen entries; raises BBZipError for images in a damaged block. Ranges are asked for in
    order: blocks are decoded (a wave at a time) when a range first needs them and let go once a
    range has passed their end."""
    info = model_description(archive)
    if info is None:
        return lambda lo, hi: np.zeros((0, 0, 0), dtype=np.uint8)
    size = info.block_images
    needed = sorted({block for i in chosen for block in _blocks_holding(int(starts[i]), int(starts[i + 1]), size)})
    try:
        coder = api.coder_for(info, model_override)
    except api.StreamError as error:
        raise BBZipError(str(error)) from None
    stream = zip(needed, api.decode_blocks(info, coder, which=needed, cores=cores, on_images=on_batch))
    decoded = {}

    def block_result(block: int):
        try:
            while block not in decoded:
                number, result = next(stream)
                decoded[number] = result
        except api.StreamError as error:  # a block's bytes could not be read
            raise ArchiveError(str(error)) from None
        return decoded[block]

    def images_of(lo: int, hi: int) -> np.ndarray:
        holding = _blocks_holding(lo, hi, size)
        images = None  # an entry spanning several blocks: each block is copied in, then let go
        for block in holding:
            result = block_result(block)
            if isinstance(result, str):
                raise BBZipError(f"model stream block {block}: {result}")
            first = block * size
            part = result[max(lo, first) - first : min(hi, first + len(result)) - first]
            if len(holding) == 1:
                images = part
            else:
                if images is None:
                    images = np.empty((hi - lo, *result.shape[1:]), dtype=result.dtype)
                images[max(lo, first) - lo : min(hi, first + len(result)) - lo] = part
            if first + len(result) <= hi:
                del decoded[block], result, part
        return images if images is not None else np.zeros((0, 0, 0), dtype=np.uint8)

    return images_of


def _blocks_holding(lo: int, hi: int, block_images: int) -> range:
    """The blocks that hold model images lo..hi - 1."""
    return range(lo // block_images, (hi - 1) // block_images + 1) if hi > lo else range(0)


def _restored(archive: Archive, meta: dict, name: str, items: np.ndarray, rebuild: bool) -> Restored:
    """One entry from its model images (in the model's domain) and its blobs, checked."""
    blobs = [archive.blob(b) for b in meta["blobs"]]  # ArchiveError (fatal) if the file changed
    try:
        if "fallback" in meta:
            items, blobs = _with_classic_images(meta, items, blobs)
        scale = meta.get("scale", 1)
        data, fingerprint = restore(meta, items * np.uint8(scale) if scale != 1 else items, blobs, rebuild)
    except (OSError, ValueError, KeyError, EOFError, lzma.LZMAError) as error:
        raise BBZipError(f"damaged entry ({error})") from None
    if meta.get("store") in CHECKED_STORES and fingerprint.crc32 != meta["crc32"]:
        raise BBZipError("decoded pixels do not match the archive's checksum (damaged archive)")
    if meta.get("store") == "link":
        return Restored(name, b"", None, _link_target(meta), fingerprint.sha256)
    return Restored(name, data, file_attributes(meta), None, fingerprint.sha256)


def _with_classic_images(meta: dict, items: np.ndarray, blobs: list) -> tuple[np.ndarray, list]:
    """An array's or .npz file's whole image stack: its model images, and its classic ones
    (the last blobs) at their places; and its other blobs."""
    fallback = meta["fallback"]
    positions, codes = fallback_positions(fallback["runs"]), fallback["codecs"]
    own = blobs[: len(blobs) - len(codes)]
    height, width = _image_shape(meta)
    stack = np.empty((len(items) + len(codes), height, width), dtype=np.uint8)
    taken = np.zeros(len(stack), dtype=bool)
    taken[positions] = True
    codecs = {code: codec for codec, code in FALLBACK_CODES.items()}
    for position, code, blob in zip(positions, codes, blobs[len(own):]):
        stack[position] = np.asarray(classic.decode(blob, codecs[code], "L", width, height), dtype=np.uint8)
    if zlib.crc32(np.ascontiguousarray(stack[taken])) != fallback["crc32"]:
        raise ValueError("classic images do not match their checksum")
    stack[~taken] = items.reshape(-1, height, width)  # none at all comes as (0, 0, 0)
    return stack, own


def _image_shape(meta: dict) -> tuple[int, int]:
    """Height and width of an array's images, or of an .npz file's first image stack."""
    if meta["format"] == "NPY":
        return meta["shape"][1], meta["shape"][2]
    first = next(m for m in meta["members"] if m["store"] == "model")
    return first["shape"][1], first["shape"][2]


def _link_target(meta: dict) -> str:
    target = meta.get("target")
    if not isinstance(target, str) or not target or "\0" in target or len(target) > 4096:
        raise BBZipError(f"{meta.get('name')!r}: damaged archive (bad link target)")
    return target
