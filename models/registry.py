"""The registry of architectures: for each, its name (in every model file and archive), its
config class, its frozen (coding) class and, where it has one, its trained (torch) class.

Adding an architecture is one module (its frozen class, implementing models.interface's
FrozenModel, and its trained class, or two modules) and one `register` line below. The coding
path never imports torch: trained classes are named here by import path and imported only when
something trains, evaluates or freezes.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from .files import ModelFileError
from .frozen_conv_vae import FrozenConvVAE
from .frozen_local_ar import FrozenLocalARVAE
from .frozen_mlp import FrozenMLPVAE
from .frozen_tiled_ar import FrozenTiledARVAE


@dataclass(frozen=True)
class Architecture:
    name: str
    frozen_class: type
    trained_path: str | None = None  # "module:Class" of the torch model, None if it has no trained form
    description: str = ""

    @property
    def config_class(self) -> type:
        return self.frozen_class.config_class

    def trained_class(self) -> type:
        if self.trained_path is None:
            raise ModelFileError(f"architecture {self.name!r} has no trained form")
        module, name = self.trained_path.split(":")
        return getattr(importlib.import_module(module), name)


ARCHITECTURES: dict[str, Architecture] = {}


def register(architecture: Architecture) -> Architecture:
    if architecture.frozen_class.architecture != architecture.name:
        raise ValueError(f"{architecture.frozen_class.__name__} calls itself {architecture.frozen_class.architecture!r}")
    ARCHITECTURES[architecture.name] = architecture
    return architecture


def get(name) -> Architecture:
    """The architecture of this name; a ModelFileError naming the known ones."""
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise ModelFileError(f"unknown architecture {name!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[name]


def trainable() -> list[str]:
    """Names of the architectures `bbzip train` can fit."""
    return [name for name, architecture in ARCHITECTURES.items() if architecture.trained_path]


def of_trained(model) -> Architecture:
    """The architecture of a trained (torch) model."""
    path = f"{type(model).__module__}:{type(model).__name__}"
    for architecture in ARCHITECTURES.values():
        if architecture.trained_path == path:
            return architecture
    raise ModelFileError(f"no registered architecture trains a {type(model).__name__}")


register(Architecture("mlp-vae", FrozenMLPVAE, "bbzip.models.vae:MLPVAE",
                      "the paper's MLP VAE: 2x500 ReLU encoder and decoder, latent 10"))
register(Architecture("local-ar-vae", FrozenLocalARVAE, "bbzip.models.local_ar:LocalARVAE",
                      "a VAE whose likelihood is a small causal network over each pixel's neighbours"))
register(Architecture("tiled-ar-vae", FrozenTiledARVAE, "bbzip.models.tiled_ar:TiledARVAE",
                      "grey or RGB images of any size, in tiles: a per-block latent and a small causal network "
                      "over each pixel's neighbours and channels"))
register(Architecture("conv-vae", FrozenConvVAE, "bbzip.models.conv_vae:ConvVAE",
                      "the paper's CIFAR-10 system: a convolutional ResNet VAE for small colour (or grey) images, "
                      "its likelihood linear-autoregressive across the channels"))
