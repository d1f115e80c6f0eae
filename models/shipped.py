"""The store of shipped models (models/weights/) and its manifest.

A shipped model is two frozen parts, each a safetensors file of integers checked against the
sha256 the manifest gives it: a decoder part (every network but the encoder) and an encoder part,
which names the decoder part it was made for. A reverse half-asleep encoder is trained with its
baseline's decoder frozen, so the two models share one decoder part. Each tensor is stored in
the narrowest integer type that holds it.

Trained (float) networks are not stored: models.weights derives them from the frozen integers,
whose freezing gives the same integers back (tests/test_shipped.py checks it for every model).

Archives name a model by a sha256 (its id, entry["sha256"]): the sha256 of its two parts'
sha256 (`model_id`) for models shipped as parts, and for the MNIST models that shipped as a
single frozen file before the store kept parts, that file's sha256, so that their archives
still decode. Files are named `<name>-<part>-<sha256[:8]>.safetensors` (CompressAI's convention).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from . import registry
from .architectures import NUMERICS_VERSION, narrowest
from .files import ModelFileError, atomic_write, sha256_of

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
# Every byte of models/weights/ ships in every clone and wheel: the test suite holds the store to
# this budget (the checkout's other files and samples take about 8 MiB of its 40 MiB).
WEIGHTS_BUDGET = 30 << 20
PART_FORMAT = "bbzip-frozen-part"
PARTS = ("decoder", "encoder")
MAX_PART_FILE = 256 << 20


def manifest() -> dict:
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def entry(name: str) -> dict:
    """A shipped model's manifest entry."""
    entries = manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ModelFileError(f"no shipped model named {name!r} (installed: {known})")
    return entries[name]


def model_id(decoder_sha256: str, encoder_sha256: str) -> str:
    """The id of a model stored as parts: what archives made with it record."""
    return hashlib.sha256(f"{decoder_sha256}:{encoder_sha256}".encode()).hexdigest()


def find_by_id(sha256: str) -> str | None:
    """The shipped model of this id."""
    return next((name for name, shipped in manifest().items() if shipped["sha256"] == sha256), None)


def default_models() -> list[tuple[str, object]]:
    """(name, config) of the shipped models marked as defaults ("default": true): the models
    `bbzip compress` picks from when it is not given one. Read from
    the decoder parts' metadata (the tensors are loaded, and every part checked, only for the
    model picked)."""
    found = []
    for name, shipped in manifest().items():
        if shipped.get("default"):
            path = WEIGHTS_DIR / shipped["decoder"]["file"]
            try:
                with safe_open(str(path), framework="numpy") as f:
                    metadata = f.metadata() or {}
                config = registry.get(metadata.get("architecture")).config_class(**json.loads(metadata["config"]))
            except (SafetensorError, OSError, ValueError, KeyError, TypeError, ModelFileError) as error:
                raise ModelFileError(f"{path}: not a bbzip model part ({error})") from None
            found.append((name, config))
    return found


def read_part(name: str, part: str) -> "Part":
    """One part of a shipped model, checked against its sha256."""
    shipped = entry(name)
    return _read_part(WEIGHTS_DIR / shipped[part]["file"], shipped[part]["sha256"], part)


def load_shipped_frozen(name: str):
    """The frozen model of a shipped name and its id, both parts checked against their sha256."""
    return assemble(read_part(name, "decoder"), read_part(name, "encoder")), entry(name)["sha256"]


# -- part files -------------------------------------------------------------------------------
def split_tensors(frozen) -> dict[str, dict[str, np.ndarray]]:
    """A frozen model's tensors by part: the encoder's, and the rest (the decoder part)."""
    tensors, _ = frozen.to_tensors()
    encoder = {key: value for key, value in tensors.items() if key.startswith("encoder.")}
    return {"encoder": encoder, "decoder": {key: value for key, value in tensors.items() if key not in encoder}}


def config_json(frozen) -> str:
    """A frozen model's config as its part files record it (and as they are compared)."""
    return json.dumps(frozen.config.to_dict())


def write_part(frozen, part: str, path: Path, info: dict) -> str:
    """Write one part of a frozen model (atomically); returns its sha256. An encoder part's
    `info` names its decoder part's sha256 (`decoder_sha256`)."""
    if part == "encoder" and "decoder_sha256" not in info:
        raise ValueError("an encoder part names the decoder part it was made for")
    metadata = {"format": PART_FORMAT, "part": part, "architecture": frozen.architecture,
                "numerics": str(NUMERICS_VERSION), "config": config_json(frozen), **info}
    tensors = narrowest(split_tensors(frozen)[part])
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return sha256_of(path)


class Part:
    """A part file, read and checked: its path, sha256, metadata and tensors."""

    def __init__(self, path: Path, sha256: str, metadata: dict, tensors: dict):
        self.path, self.sha256, self.metadata, self.tensors = path, sha256, metadata, tensors


def _read_part(path: Path, expected_sha256: str, part: str) -> Part:
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if path.stat().st_size > MAX_PART_FILE:
        raise ModelFileError(f"{path}: larger than any bbzip model ({MAX_PART_FILE >> 20} MiB)")
    if sha256_of(path) != expected_sha256:
        raise ModelFileError(f"{path}: sha256 does not match the manifest (file changed or damaged)")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{path}: not a safetensors model file ({error})") from None
    if metadata.get("format") != PART_FORMAT or metadata.get("part") != part:
        raise ModelFileError(f"{path}: not the {part} part of a bbzip model")
    if metadata.get("numerics") != str(NUMERICS_VERSION):
        raise ModelFileError(f"{path}: frozen for numerics version {metadata.get('numerics')!r}; "
                             f"this bbzip computes version {NUMERICS_VERSION}")
    return Part(path, expected_sha256, metadata, tensors)


def assemble(decoder: Part, encoder: Part):
    """The frozen model of a decoder part and the encoder part made for it; a pair that does not
    belong together is refused."""
    if encoder.metadata.get("decoder_sha256") != decoder.sha256:
        raise ModelFileError(f"{encoder.path.name}: this encoder was not made for decoder {decoder.path.name}")
    try:
        architecture = registry.get(decoder.metadata.get("architecture"))
    except ModelFileError as error:
        raise ModelFileError(f"{decoder.path.name}: {error}") from None
    if (encoder.metadata.get("architecture"), encoder.metadata.get("config")) != \
            (decoder.metadata["architecture"], decoder.metadata.get("config")):
        raise ModelFileError(f"{encoder.path.name}: architecture differs from its decoder's ({decoder.path.name})")
    try:
        config = architecture.config_class(**json.loads(decoder.metadata["config"]))
        return architecture.frozen_class.from_tensors(config, {**decoder.tensors, **encoder.tensors})
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{decoder.path.name} + {encoder.path.name}: not a valid frozen model ({error})") from None


# -- changing the manifest (models/ship.py) ---------------------------------------------------
def update_entry(name: str, update) -> None:
    """Change one manifest entry under a lock (two training runs may finish at once);
    update(old entry or None) gives the new one, or None to remove it."""
    WEIGHTS_DIR.mkdir(exist_ok=True)
    with open(WEIGHTS_DIR / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = manifest()
        new = update(entries.get(name))
        if new is None:
            entries.pop(name, None)
        else:
            entries[name] = new
        atomic_write(MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n"))


def files_in_use() -> set[str]:
    return {shipped[part]["file"] for shipped in manifest().values() for part in PARTS}

