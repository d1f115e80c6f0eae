"""The frozen-model protocol: what the coding path (models/stream.py, blocks.py, api.py,
coder_choice.py, shipped.py and the CLI's fallback) calls on a frozen architecture, and nothing
else. An architecture implements it in one module and is listed once in models/registry.py.

A frozen model codes images exactly on every machine: every number that reaches a frequency
table is an integer (numerics version, models/architectures.py). Its `config` is a frozen
dataclass with `to_dict()` (recorded in files and archives), `pixels` (symbols per image) and
`codes` (a models.pixels.Pixels: channels, value set, size). Pixels become symbols, and symbols
pixels, through `codes` alone.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np


class FrozenModel(ABC):
    architecture: str  # the registry name, recorded in the frozen file and in every archive
    config_class: type  # config_class(**config.to_dict()) rebuilds the config
    config: object
    # Whether batch_codec takes `kept` (models/stream.py: encode_checked): a dict in which a
    # batch's push leaves what it computed, for the check of the same batch to take; such a
    # model has finish_check(later), which encode_checked calls once a block is checked with
    # what the checks left in kept["later"].
    keeps_for_check = False
    # Whether images are coded by bits back through a latent (which K-step inference optimises);
    # a model of tiles without one codes the likelihood alone.
    has_latent = True

    # -- what it codes: the pixels <-> symbols map is its Pixels' ---------------------------
    def accepts(self, images: np.ndarray) -> bool:
        """Whether this model codes the uint8 stack of images."""
        return self.config.codes.accepts(images)

    def to_symbols(self, images: np.ndarray, scale: int | None = None) -> tuple[np.ndarray, int]:
        """(symbols (N, pixels) uint8, scale): scale is what symbols are multiplied by to give
        pixels; found from the images, or given (the scale of a whole record)."""
        return self.config.codes.to_symbols(images, scale)

    def from_symbols(self, symbols: np.ndarray, scale: int) -> np.ndarray:
        return self.config.codes.from_symbols(symbols, scale)

    # -- coding ---------------------------------------------------------------------------------
    @abstractmethod
    def batch_codec(self, settings, first_index: int, n_images: int):
        """The bits-back codec (a bbans.Codec) of n images, symbols (n, pixels); the first is
        image `first_index` of its block (K-step noise depends on it, not on the batch). A model
        of any size (models/pixels.py) also takes `extents` (n, 2): which rows and columns of
        each tile lie inside its image. A model whose unit (image or tile) codes on more than one
        lane of the message says so in `lanes_per_unit` (models/stream.py)."""

    @abstractmethod
    def codelength_bits(self, symbols: np.ndarray, settings) -> np.ndarray:
        """Per image, about the bits coding it takes at K = 0 (the classic fallback compares it
        with the classic codecs' sizes, cli/fallback.py); a model of any size also takes
        `extents` as batch_codec does."""

    def first_look(self, symbols: np.ndarray, settings) -> "FirstLook | None":
        """A cheaper estimate of codelength_bits, and the rest of the work to the exact figure
        for the images that need it (the classic fallback settles most images on the estimate,
        cli/fallback.py); None where the model has none."""
        return None


@dataclass(frozen=True)
class FirstLook:
    estimate: np.ndarray  # per image, about its codelength_bits
    exact: Callable[[np.ndarray], np.ndarray]  # indices -> those images' codelength_bits, from the work done

    # -- the file form --------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def freeze(cls, trained_model) -> "FrozenModel":
        """The integer form of a trained (torch) model of this architecture."""

    @abstractmethod
    def to_tensors(self) -> tuple[dict[str, np.ndarray], dict]:
        """(integer tensors, {"config": config.to_dict()}): what a frozen file holds. Tensors
        named "encoder.*" make the encoder part of a shipped model, the rest its decoder part."""

    @classmethod
    @abstractmethod
    def from_tensors(cls, config, tensors: dict[str, np.ndarray]) -> "FrozenModel":
        """The model of a frozen file; a ValueError for tensors that do not fit `config` (any
        integer dtype is taken: files store each tensor in the narrowest that holds it)."""

    def float_state(self) -> dict[str, np.ndarray]:
        """The trained model's state dict these integers stand for (float64, torch's names), if
        the architecture has a trained form; `freeze` of it gives the same integers back."""
        raise NotImplementedError(f"{self.architecture} has no trained form")
