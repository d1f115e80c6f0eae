"""Frozen model files, freezing, and the numerics version.

Architectures are listed in models/registry.py. Frozen files are safetensors of integer tensors
(loaded with safetensors' numpy reader: no pickle, no torch), with the architecture, its config
and the numerics version in the metadata.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from . import registry
from .files import ModelFileError, atomic_write, sha256_of
from .pixels import as_zero_one

FROZEN_FORMAT = "bbzip-frozen"
# The numerics version: what the integer tables, layers and K-step arithmetic compute. Archives
# record it; a change that alters any table entry or any integer result needs a new number.
NUMERICS_VERSION = 1
MAX_MODEL_FILE = 256 << 20


def likelihood_input(likelihood: str, images: np.ndarray, name: str = "images") -> np.ndarray:
    """Images as a model of this likelihood sees them in training and evaluation: two-valued
    images as 0/1 for "bernoulli" (refused if not two-valued), anything else unchanged."""
    if likelihood != "bernoulli":
        return images
    try:
        return as_zero_one(images)[0]
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def freeze(trained_model):
    """The frozen (integer) form of a trained torch model, by its architecture."""
    return registry.of_trained(trained_model).frozen_class.freeze(trained_model)


def narrowest(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each integer tensor in the narrowest signed type that holds its values (models load any
    integer type, so this changes no number, only the bytes a file takes)."""
    def narrow(values: np.ndarray) -> np.ndarray:
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        kind = next(t for t in (np.int8, np.int16, np.int32, np.int64) if np.iinfo(t).min <= low and high <= np.iinfo(t).max)
        return np.ascontiguousarray(values, dtype=kind)
    return {key: narrow(value) for key, value in tensors.items()}


def save_frozen(frozen, path: Path, info: dict | None = None) -> str:
    """Write a frozen model (atomically) as one file; returns its sha256. `info` lands in the
    metadata. (Shipped models are stored as two parts instead: models/shipped.py.)"""
    tensors, spec = frozen.to_tensors()
    tensors = narrowest(tensors)
    metadata = {"format": FROZEN_FORMAT, "architecture": frozen.architecture, "numerics": str(NUMERICS_VERSION),
                "config": json.dumps(spec["config"])}
    for key, value in (info or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return sha256_of(path)


def is_frozen_file(path: Path) -> bool:
    return read_metadata(path).get("format") == FROZEN_FORMAT


def read_metadata(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="numpy") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{path}: not a safetensors model file ({error})") from None


def load_frozen(path: Path, expected_sha256: str | None = None):
    """Load a frozen model; with `expected_sha256` the file must match it exactly."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if path.stat().st_size > MAX_MODEL_FILE:
        raise ModelFileError(f"{path}: larger than any bbzip model ({MAX_MODEL_FILE >> 20} MiB)")
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise ModelFileError(f"{path}: sha256 does not match the manifest (file changed or damaged)")
    metadata = read_metadata(path)
    if metadata.get("format") != FROZEN_FORMAT:
        raise ModelFileError(f"{path}: not a frozen bbzip model (metadata format {metadata.get('format')!r})")
    if metadata.get("numerics") != str(NUMERICS_VERSION):
        raise ModelFileError(f"{path}: frozen for numerics version {metadata.get('numerics')!r}; "
                             f"this bbzip computes version {NUMERICS_VERSION}")
    try:
        architecture = registry.get(metadata.get("architecture"))
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    try:
        config = architecture.config_class(**json.loads(metadata["config"]))
        return architecture.frozen_class.from_tensors(config, load_file(str(path)))
    except (KeyError, TypeError, ValueError, SafetensorError) as error:
        raise ModelFileError(f"{path}: not a valid frozen model ({error})") from None
