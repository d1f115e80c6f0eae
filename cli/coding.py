"""Compressing entries into an archive and back: model choice, settings, the two streams."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.vae import LIKELIHOOD_PRECISION, MLPVAE
from models.weights import ModelFileError, find_by_sha256, load_model, load_shipped, sha256_of, shipped_path

from . import model_stream
from .archive import Archive, entry_checksum
from .entries import Entry, checksum_source, restore
from .errors import BBZipError

DEFAULT_MODELS = {"bernoulli": "mlp-binary-mnist-rha", "logistic": "mlp-mnist-rha"}
# Lanes (images coded side by side). Lanes grow from bits already on the stack, so what a lane
# costs is the ~5 bits of its final head; more lanes code faster. By default a lane is allowed
# per LANE_SHARE images (about 0.2% of a binary or grey MNIST image's bits), up to MAX_LANES.
LANE_SHARE = {"bernoulli": 1 / 20, "logistic": 1 / 2}
MIN_LANES, MAX_LANES = 16, 1000
BUCKET_BITS = {"bernoulli": 10, "logistic": 12}


@dataclass
class ModelChoice:
    model: MLPVAE
    name: str
    sha256: str


def binary_scale(stack: np.ndarray) -> int | None:
    """1 if the values are within {0, 1}, 255 if within {0, 255}, else None."""
    values = np.unique(stack)
    if np.all(np.isin(values, (0, 1))):
        return 1
    if np.all(np.isin(values, (0, 255))):
        return 255
    return None


def fits(model_config):
    def check(stack: np.ndarray) -> bool:
        if stack.shape[1:] != (model_config.height, model_config.width):
            return False
        return model_config.likelihood != "bernoulli" or binary_scale(stack) is not None

    return check


def load_choice(spec: str) -> ModelChoice:
    """--model: a shipped model's name or a safetensors file."""
    path = Path(spec)
    if path.suffix == ".safetensors" or path.exists():
        model, _ = load_model(path)
        return ModelChoice(model, path.name, sha256_of(path))
    model, _ = load_shipped(spec)
    return ModelChoice(model, spec, shipped_path(spec)[1])


def choose_default(entries: list[Entry]) -> str | None:
    """The shipped model that fits: binary if every model image is two-valued, else grey."""
    stacks = [np.stack(e.items) for e in entries if e.items]
    if not stacks:
        return None
    return DEFAULT_MODELS["bernoulli" if all(binary_scale(s) for s in stacks) else "logistic"]


def default_batch_size(likelihood: str, n_images: int) -> int:
    return min(MAX_LANES, max(MIN_LANES, round(n_images * LANE_SHARE[likelihood])))


def settings_for(model: MLPVAE, k_steps: int, lr: float, seed: int, batch_size: int | None,
                 n_images: int) -> model_stream.CodingSettings:
    likelihood = model.config.likelihood
    bucket_bits = BUCKET_BITS[likelihood]
    return model_stream.CodingSettings(
        k_steps=k_steps, lr=lr, seed=seed, batch_size=batch_size or default_batch_size(likelihood, n_images),
        bucket_bits=bucket_bits, posterior_precision=bucket_bits + 12, likelihood_precision=LIKELIHOOD_PRECISION,
    )


def to_symbols(entry: Entry, likelihood: str) -> np.ndarray:
    stack = np.stack(entry.items)
    if likelihood == "bernoulli":
        entry.meta["scale"] = binary_scale(stack)
        return stack // entry.meta["scale"]
    return stack


def build(entries: list[Entry], choice: ModelChoice | None, settings, on_batch=None) -> tuple[dict, bytes]:
    """The header and payload of an archive holding `entries`."""
    payload = bytearray()
    stream_items = []
    if any(e.items for e in entries) and choice is None:
        raise BBZipError("images for the model but no model")
    all_pixels = hashlib.sha256()
    for entry in entries:
        source = checksum_source(entry)
        entry.meta["crc32"] = entry_checksum(source)
        all_pixels.update(source)
        entry.meta.pop("pixels", None)
        if entry.items:
            stream_items.append(to_symbols(entry, choice.model.config.likelihood))
    header = {"entries": [], "model": None, "coding": None, "pixels_sha256": all_pixels.hexdigest()}
    if stream_items:
        symbols = np.concatenate(stream_items)
        stream = model_stream.encode(choice.model, symbols, settings, on_batch)
        header["model"] = {"name": choice.name, "sha256": choice.sha256, "config": choice.model.config.to_dict()}
        header["coding"] = settings.to_dict()
        header["model_stream"] = {"offset": 0, "length": len(stream), "items": int(len(symbols))}
        payload += stream
    for entry in entries:
        blobs = []
        for blob in entry.blobs:
            blobs.append({"offset": len(payload), "length": len(blob)})
            payload += blob
        header["entries"].append({"name": entry.name, "kind": entry.kind, "items": len(entry.items), "blobs": blobs, **entry.meta})
    header["payload_length"] = len(payload)
    return header, bytes(payload)


def resolve_model(header: dict, override: str | None) -> ModelChoice | None:
    """The model an archive was made with: the --model given, or the installed one of that sha256."""
    wanted = header.get("model")
    if wanted is None:
        return None
    if override:
        choice = load_choice(override)
        if choice.sha256 != wanted["sha256"]:
            raise BBZipError(f"--model {override} is not the model this archive needs ({wanted['name']}, sha256 {wanted['sha256'][:16]}...)")
        return choice
    name = find_by_sha256(wanted["sha256"])
    if name is None:
        raise BBZipError(f"archive needs model {wanted['name']} (sha256 {wanted['sha256'][:16]}...), which is not installed; "
                         "pass it with --model FILE")
    try:
        return load_choice(name)
    except ModelFileError as error:
        raise BBZipError(str(error)) from None


def extract(archive: Archive, choice: ModelChoice | None, on_batch=None) -> list[tuple[str, bytes]]:
    """(name, file bytes) of every entry, each checked against its crc32, and all of them
    together against the archive's sha256 of the decoded pixels."""
    header = archive.header
    items = np.zeros((0,), dtype=np.uint8)
    if header.get("model"):
        coding = model_stream.CodingSettings(**header["coding"])
        count = header["model_stream"]["items"]
        items = model_stream.decode(choice.model, archive.model_stream, count, coding, on_batch)
    position, files, all_pixels = 0, [], hashlib.sha256()
    for meta in header["entries"]:
        n = meta["items"]
        entry_items = [] if n == 0 else list(items[position : position + n].astype(np.int64) * meta.get("scale", 1))
        position += n
        blobs = [archive.blob(b) for b in meta["blobs"]]
        try:
            data, source = restore(meta, entry_items, blobs)
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise BBZipError(f"{meta.get('name')}: damaged entry ({error})") from None
        if entry_checksum(source) != meta["crc32"]:
            raise BBZipError(f"{meta['name']}: decoded pixels do not match the archive's checksum (damaged archive)")
        all_pixels.update(source)
        files.append((meta["name"], data))
    if all_pixels.hexdigest() != header["pixels_sha256"]:
        raise BBZipError("decoded pixels do not match the archive's sha256 (damaged archive)")
    return files
