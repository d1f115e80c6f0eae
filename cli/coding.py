"""Compressing entries into an archive and back: model choice, settings, the two streams.

The images of every model entry go, in entry order, into one model stream record
(models.api): it names the model by sha256 and carries the coding settings and the numerics
version, so the archive's own header only says which entry owns which images.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from models import api
from models.interface import as_zero_one, binary_scale
from models.coder_choice import DEFAULT_MODELS, Coder, load_coder

from .archive import Archive, entry_checksum
from .entries import Entry, checksum_source, file_attributes, restore
from .errors import BBZipError


def fits(model):
    """Whether one entry's uint8 stack (N, H, W) can go to `model`."""
    return model.accepts


def fits_any_shipped(stack: np.ndarray) -> bool:
    """Before a model is chosen: the shipped models' size, grey or two-valued."""
    return stack.dtype == np.uint8 and stack.ndim == 3 and stack.shape[1:] == (28, 28)


def choose_default(entries: list[Entry]) -> Coder | None:
    """The shipped model that fits: binary if every model entry is two-valued, else grey."""
    stacks = [np.stack(e.items) for e in entries if e.items]
    if not stacks:
        return None
    return load_coder(DEFAULT_MODELS["bernoulli" if all(binary_scale(s) for s in stacks) else "logistic"])


def _model_symbols_as_images(entry: Entry, coder: Coder) -> np.ndarray:
    """An entry's images in the model's domain: two-valued entries as 0/1 for a binary model
    (each entry keeps its own scale, 1 or 255, in its metadata)."""
    stack = np.stack(entry.items).astype(np.uint8)
    if coder.model.config.likelihood == "bernoulli":
        stack, entry.meta["scale"] = as_zero_one(stack)
    return stack


def build(entries: list[Entry], coder: Coder | None, settings, on_batch=None, cores: int | None = None) -> tuple[dict, bytes]:
    """The header and payload of an archive holding `entries`."""
    payload = bytearray()
    stacks = []
    if any(e.items for e in entries) and coder is None:
        raise BBZipError("images for the model but no model")
    all_pixels = hashlib.sha256()
    for entry in entries:
        source = checksum_source(entry)
        entry.meta["crc32"] = entry_checksum(source)
        all_pixels.update(source)
        entry.meta.pop("pixels", None)
        if entry.items:
            stacks.append(_model_symbols_as_images(entry, coder))
    header = {"entries": [], "pixels_sha256": all_pixels.hexdigest()}
    if stacks:
        images = np.concatenate(stacks)
        record = api.encode_record(coder, images, settings, cores=cores, on_batch=on_batch)
        header["model_stream"] = {"offset": 0, "length": len(record), "items": int(len(images))}
        payload += record
    for entry in entries:
        blobs = []
        for blob in entry.blobs:
            blobs.append({"offset": len(payload), "length": len(blob)})
            payload += blob
        header["entries"].append({"name": entry.name, "kind": entry.kind, "items": len(entry.items), "blobs": blobs, **entry.meta})
    header["payload_length"] = len(payload)
    return header, bytes(payload)


def model_description(archive: Archive) -> api.StreamInfo | None:
    """The model stream record's header (model, settings, numerics), checked; None if no images."""
    if "model_stream" not in archive.header:
        return None
    try:
        return api.read_record(archive.model_stream)
    except api.StreamError as error:
        raise BBZipError(f"damaged archive ({error})") from None


@dataclass(frozen=True)
class Restored:
    """One entry, decoded and checked: a file's bytes, or the target of a symbolic link."""

    name: str
    data: bytes
    attributes: tuple[int, int] | None  # (permission bits, mtime in ns)
    link_target: str | None = None


def extract(archive: Archive, model_override: str | Coder | None = None, on_batch=None,
            cores: int | None = None) -> list[Restored]:
    """Every entry, each checked against its crc32, and all of them together against the
    archive's sha256 of the decoded pixels."""
    header = archive.header
    images = np.zeros((0,), dtype=np.uint8)
    if "model_stream" in header:
        try:
            images = api.decompress(archive.model_stream, model=model_override, cores=cores, on_batch=on_batch)
        except api.StreamError as error:
            raise BBZipError(str(error)) from None
        if len(images) != header["model_stream"]["items"]:
            raise BBZipError("damaged archive (model stream image count mismatch)")
    position, files, all_pixels = 0, [], hashlib.sha256()
    for name, meta in zip(archive.names, header["entries"]):
        n = meta["items"]
        entry_items = [] if n == 0 else list(images[position : position + n].astype(np.int64) * meta.get("scale", 1))
        position += n
        blobs = [archive.blob(b) for b in meta["blobs"]]
        try:
            data, source = restore(meta, entry_items, blobs)
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise BBZipError(f"{meta.get('name')}: damaged entry ({error})") from None
        if entry_checksum(source) != meta["crc32"]:
            raise BBZipError(f"{meta['name']}: decoded pixels do not match the archive's checksum (damaged archive)")
        all_pixels.update(source)
        if meta.get("store") == "link":
            files.append(Restored(name, b"", None, _link_target(meta)))
        else:
            files.append(Restored(name, data, file_attributes(meta)))
    if all_pixels.hexdigest() != header["pixels_sha256"]:
        raise BBZipError("decoded pixels do not match the archive's sha256 (damaged archive)")
    return files


def _link_target(meta: dict) -> str:
    target = meta.get("target")
    if not isinstance(target, str) or not target or "\0" in target or len(target) > 4096:
        raise BBZipError(f"{meta.get('name')!r}: damaged archive (bad link target)")
    return target
