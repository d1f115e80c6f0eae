"""Which frozen model codes a set of images, and with which default settings."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .architectures import freeze, is_frozen_file, load_frozen
from .coding_settings import CodingSettings
from .files import ModelFileError, sha256_of
from .integer_mlp import FrozenModelError
from .interface import binary_scale
from .shipped import find_by_id, load_shipped_frozen
from .vae_config import LIKELIHOOD_PRECISION

# The local autoregressive VAEs (models/local_ar.py), reverse half-asleep encoders: on the 10k
# MNIST test images 0.1190 / 1.2315 bpd at K=0 against the MLP VAEs' 0.1505 / 1.5353
# (benchmarks/results/compression-ar.md).
DEFAULT_MODELS = {"bernoulli": "ar-binary-mnist-rha", "logistic": "ar-mnist-rha"}
# Lanes (images coded side by side). Lanes grow from bits already on the stack, so what a lane
# costs is the ~5 bits of its final head; more lanes code faster. By default a lane is allowed
# per LANE_SHARE images (about 0.2% of a binary or grey MNIST image's bits), up to MAX_LANES.
LANE_SHARE = {"bernoulli": 1 / 20, "logistic": 1 / 2}
MIN_LANES, MAX_LANES = 16, 1000
BUCKET_BITS = {"bernoulli": 10, "logistic": 12}
# Images per block (models.blocks). A block costs its lanes' final heads and its first image's
# initial bits: about 250 bytes (binary) and 1,000 bytes (grey) with the default lanes, so a
# block of about 250 KB (binary) or 1.2 MB (grey) of stream keeps that near 0.1%, while the 70k
# MNIST images still make 9 blocks to share between cores.
BLOCK_IMAGES = {"bernoulli": 16384, "logistic": 8192}
BLOCK_MULTIPLE = 4


@dataclass
class Coder:
    """A frozen model and the id an archive records for it (a file's sha256, or a shipped
    model's id: models/shipped.py)."""

    model: object
    name: str
    sha256: str

    def describe(self) -> dict:
        model = self.model
        return {"name": self.name, "sha256": self.sha256, "architecture": model.architecture,
                "config": model.config.to_dict()}


def is_file_spec(spec: str) -> bool:
    """Only a path that ends in .safetensors or names a folder is a file; anything else is a
    shipped model's name (so a file called like a shipped model cannot shadow it)."""
    return str(spec).endswith(".safetensors") or "/" in str(spec)


def load_coder(spec: str | Path) -> Coder:
    """A shipped model's name, a frozen file, or a trained file (frozen here, as `freeze` would)."""
    if not is_file_spec(str(spec)):
        frozen, model_id = load_shipped_frozen(str(spec))
        return Coder(frozen, str(spec), model_id)
    path = Path(spec)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    sha = sha256_of(path)
    if is_frozen_file(path):
        return Coder(load_frozen(path, sha), path.name, sha)
    from .weights import load_model  # torch, only for a trained file

    model, _ = load_model(path, sha)
    try:
        return Coder(freeze(model), path.name, sha)
    except FrozenModelError as error:
        raise ModelFileError(f"{path}: {error}") from None


def pick_default(images: np.ndarray) -> Coder | None:
    """The shipped model that fits: binary if the images are two-valued, else grey."""
    if images.ndim != 3 or images.dtype != np.uint8:
        return None
    coder = load_coder(DEFAULT_MODELS["bernoulli" if binary_scale(images) else "logistic"])
    return coder if coder.model.accepts(images) else None


def resolve(description: dict, override: str | Path | Coder | None) -> Coder:
    """The model an archive was made with: `override` if given (a spec or an already loaded
    Coder; it must have the recorded sha256), else the shipped model of that sha256."""
    if override:
        coder = override if isinstance(override, Coder) else load_coder(override)
        if coder.sha256 != description["sha256"]:
            raise ModelFileError(f"--model {override} is not the model this archive needs ({description['name']}, "
                                 f"sha256 {description['sha256'][:16]}...)")
    else:
        name = find_by_id(description["sha256"])
        if name is None:
            raise ModelFileError(f"archive needs model {description['name']} (sha256 {description['sha256'][:16]}...), "
                                 "which is not installed; pass it with --model FILE")
        coder = load_coder(name)
    recorded = json.dumps(description["config"], sort_keys=True)
    if coder.model.architecture != description["architecture"] or json.dumps(coder.model.config.to_dict(), sort_keys=True) != recorded:
        raise ModelFileError(f"{coder.name}: architecture does not match the archive's record")
    return coder


def default_settings(coder: Coder, n_images: int, k_steps: int = 0, lr: float = 5e-3, seed: int = 0,
                     batch_size: int | None = None, block_images: int | None = None) -> CodingSettings:
    """Settings for `n_images` cut into blocks (default size if None): lanes by a block's size."""
    likelihood = coder.model.config.likelihood
    bucket_bits = BUCKET_BITS[likelihood]
    per_block = min(n_images, block_images or default_block_images(coder, n_images))
    lanes = min(MAX_LANES, max(MIN_LANES, round(per_block * LANE_SHARE[likelihood])))
    return CodingSettings(k_steps=k_steps, lr=float(lr), seed=seed, batch_size=lanes if batch_size is None else batch_size,
                          bucket_bits=bucket_bits, posterior_precision=bucket_bits + 12,
                          likelihood_precision=LIKELIHOOD_PRECISION)


def default_block_images(coder: Coder, n_images: int) -> int:
    """About BLOCK_IMAGES[likelihood] images a block; an input of BLOCK_MULTIPLE blocks or more is
    cut into a multiple of BLOCK_MULTIPLE blocks of equal size (the last a little shorter), so
    that 2 or 4 cores finish together: 70,000 grey images make 12 blocks of 5,834, where blocks of
    8,192 made 8 and one of 4,464, and two cores coded 4.5 blocks' worth against 4."""
    size = BLOCK_IMAGES[coder.model.config.likelihood]
    count = -(-n_images // size)
    if count < BLOCK_MULTIPLE:
        return size
    count = -(-count // BLOCK_MULTIPLE) * BLOCK_MULTIPLE
    return -(-n_images // count)
