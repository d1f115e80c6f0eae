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
from .pixels import Pixels, binary_scale
from .shipped import default_models, find_by_id, load_shipped_frozen
from .vae_config import LIKELIHOOD_PRECISION

# Lanes (images coded side by side) grow from bits already on the stack, so what a lane costs is
# the ~5 bits of its final head; more lanes code faster. By default a lane is allowed per
# `lane_share` images of a block (models/pixels.py: CodingDefaults), from MIN_LANES to MAX_LANES.
MIN_LANES, MAX_LANES = 16, 1000
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


def default_codes() -> list[tuple[str, Pixels]]:
    """The shipped default models and what each codes, the narrowest value set first (so that
    two-valued images go to a two-valued model, the rest to an 8-bit one), models of a fixed
    size before those of any size (28x28 digits go to the MNIST models, photos to a tiled one)."""
    return sorted(((name, config.codes) for name, config in default_models()), key=lambda item: (item[1].values, item[1].any_size))


def fits_a_default() -> "FitsADefault":
    """Before a model is chosen: fits(stack), whether a default model takes images of the
    stack's shape (the store is read once, here, not for every file)."""
    return FitsADefault(tuple(codes for _, codes in default_codes()))


@dataclass(frozen=True)
class FitsADefault:
    """fits_a_default's answer, a callable that reading jobs take to worker processes."""

    codes: tuple

    def __call__(self, stack) -> bool:
        return any(each.fits_shape(stack) for each in self.codes)


def pick_default(stacks) -> Coder | None:
    """The shipped default model that codes every one of these image stacks (each an array, or a
    stack read as needed), None if none does."""
    for name, codes in default_codes():
        if all(codes.accepts(stack) for stack in stacks):
            return load_coder(name)
    return None


def pick_default_for_most(stacks) -> Coder | None:
    """The shipped default model that codes the most pixels of these stacks (None if it codes
    none of them). A model of any size counts only the stacks no default of a fixed size codes
    (a folder of 28x28 digits with an odd-sized bitmap stays with the MNIST model; grey photos
    with a few digits go to the grey photo model, digits and all). Of two that code as many, the
    first in default_codes' order (the narrower)."""
    return default_for_most(stacks)[0]


def default_for_most(stacks) -> tuple[Coder | None, list[bool]]:
    """pick_default_for_most's model, and for each stack whether that model codes it."""
    named = default_codes()  # read from the store once
    defaults = [codes for _, codes in named]
    # Whether a model accepts a stack depends on its dtype, its images' shape and (for a
    # two-valued model) its values alone: each kind of stack is judged once, with its pixels
    # counted together (a folder of 10,000 digits is 10,000 stacks of one kind), and a stack's
    # values are looked at once.
    kinds: dict[tuple, list] = {}  # kind -> [pixels, a stack of that kind]
    kind_of_each = []
    for stack in stacks:
        kind = (stack.dtype.str, tuple(stack.shape[1:]))
        if any(codes.two_valued and codes.fits_shape(stack) for codes in defaults):
            kind += (binary_scale(stack),)
        kinds.setdefault(kind, [0, stack])[0] += int(np.prod(stack.shape, dtype=np.int64))
        kind_of_each.append(kind)
    claimed = {kind: any(not codes.any_size and codes.accepts(stack) for codes in defaults) for kind, (_, stack) in kinds.items()}

    def pixels(codes):
        return sum(count for kind, (count, stack) in kinds.items() if codes.accepts(stack) and not (codes.any_size and claimed[kind]))

    best, chosen = 0, None
    for name, codes in named:
        coded = pixels(codes)
        if coded > best:
            best, chosen = coded, name
    if chosen is None:
        return None, [False] * len(kind_of_each)
    coder = load_coder(chosen)
    accepted = {kind: coder.model.config.codes.accepts(stack) for kind, (_, stack) in kinds.items()}
    return coder, [accepted[kind] for kind in kind_of_each]


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
    defaults = coder.model.config.codes.defaults
    bucket_bits = defaults.bucket_bits
    per_block = min(n_images, block_images or default_block_images(coder, n_images, k_steps))
    lanes = min(MAX_LANES, max(MIN_LANES, round(per_block * defaults.lane_share)))
    return CodingSettings(k_steps=k_steps, lr=float(lr), seed=seed, batch_size=lanes if batch_size is None else batch_size,
                          bucket_bits=bucket_bits, posterior_precision=bucket_bits + 12,
                          likelihood_precision=LIKELIHOOD_PRECISION)


def default_block_images(coder: Coder, n_images: int, k_steps: int = 0) -> int:
    """About `block_images` (models/pixels.py: CodingDefaults) images a block; an input of more
    than one block is cut into equal blocks (the last a little shorter), two of them or a
    multiple of two, and from BLOCK_MULTIPLE blocks a multiple of BLOCK_MULTIPLE, so that 2 or 4
    cores finish together: 10,000 grey images make 2 blocks of 5,000, where blocks of 8,192 made
    one and one of 1,808 (two cores waited on the large one); 70,000 make 12 of 5,834, where
    8,192 made 8 and one of 4,464. An input of half a block's worth of coding to one block is
    cut in two; with `k_steps` an image is about 1 + K images' worth (each step a forward and a
    backward pass through the decoder, about as much as coding it), so 2,000 binary digits at
    K = 10 make two blocks, one for each core, where one block shared two threads of one process.
    Larger inputs keep the plain block size whatever K: each block costs bytes (its digest, the
    start of its lanes), and two or more already keep two cores busy."""
    codes = coder.model.config.codes
    size = codes.defaults.block_images
    count = -(-n_images // size)
    worth = n_images * (1 + k_steps) if coder.model.has_latent else n_images  # images' worth of coding
    if count < 2 and worth >= 2 * max(1, size // 4):
        # A block is coded on one core (numpy's threads do not pay on products of a few thousand
        # rows): one block alone would leave the second core idle, so from half a block's worth
        # the input is cut in two. Not below a quarter of a block's worth each: a block starts its
        # lanes on virtual words (models/stream.py), and a worker process takes about a second to
        # start. (10,000 binary digits: compress 9.2 -> 6.4 s, decompress 4.2 -> 3.6 s, and 5
        # bytes smaller: half the lanes each, the same share of them started from the stack.)
        return -(-n_images // 2)
    if count < 2:
        return size
    multiple = BLOCK_MULTIPLE if count >= BLOCK_MULTIPLE else 2
    count = -(-count // multiple) * multiple
    return -(-n_images // count)
