"""The local autoregressive VAE's settings and causal window (no torch: the coding path, which
must not import torch, uses them too)."""
from __future__ import annotations

from dataclasses import dataclass

from .vae_config import VAEConfig


@dataclass(frozen=True)
class LocalARConfig(VAEConfig):
    features: int = 4  # numbers per pixel from the decoder MLP
    head: int = 32  # width of the head's two hidden layers
    radius: int = 2  # context window: rows above and columns either side

    def __post_init__(self):
        super().__post_init__()
        for name, value, top in (("features", self.features, 64), ("head", self.head, 256), ("radius", self.radius, 4)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise ValueError(f"{name} must be an integer in 1..{top}, got {value!r}")

    @property
    def outputs(self) -> int:
        """Likelihood parameters per pixel: a logit, or a logistic mean and log-scale."""
        return 1 if self.likelihood == "bernoulli" else 2


def context_offsets(radius: int) -> list[tuple[int, int]]:
    """(row, column) offsets of the causal window, in raster order (the head's input order)."""
    above = [(di, dj) for di in range(-radius, 0) for dj in range(-radius, radius + 1)]
    return above + [(0, dj) for dj in range(-radius, 0)]
