"""The tiled local autoregressive VAE's settings (no torch: the coding path uses them too).

The model codes images of any size in square tiles of `tile` pixels a side. Within a tile:

- a latent of `latent_channels` numbers per `stride` x `stride` block (the latent map is the
  tile at 1/stride resolution), from a per-block encoder MLP, with a standard normal prior;
- a per-block decoder MLP that turns each block's latent into `features` numbers per pixel;
- a head: a per-pixel MLP (plus a linear skip from its input to its output) from each pixel's
  causal window of already-coded pixels (all channels; see context_offsets) and its features
  to the pixel's likelihood: per channel a discretised logistic, or a mixture of `mixtures`
  of them with weights of their own, the colour channels coupled linearly (G given R, B given
  R and G, as PixelCNN++; each component with its own coefficients).

With `latent_channels` 0 the model has no latent, encoder or decoder: it is a local
autoregressive model (as NeLLoC), coded directly, without bits back. Trained on photo patches
the latent's KL falls to about 0 (the local context leaves it nothing to carry), and a latent
that carries nothing still costs its coding: each tile's first posterior pop needs bits on the
stack, so tiles must be coded in a ramp of batches, and each batch is a full pixel-by-pixel
decode. README, "Colour photos", has the figures.

Tiles see nothing of each other (zero context outside a tile), so every tile of every image of a
block is one lane of the coder and all of them decode together, one pixel position at a time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .local_ar_config import context_offsets
from .pixels import Pixels

__all__ = ["DIFFERENCE_UNIT", "EDGE_FLAGS", "MID_LEVEL", "TiledARConfig", "context_offsets"]

# The head reads differences from a reference in units of this many levels, and its means are
# the reference plus its output in these units: neighbouring pixels differ by a few levels, so
# inputs and outputs stay near 1 and training is well conditioned.
DIFFERENCE_UNIT = 32.0
MID_LEVEL = 128  # the reference of a tile's first pixel, which has no neighbour
EDGE_FLAGS = 2  # head inputs that say a pixel is on the tile's first row, in its first column


@dataclass(frozen=True)
class TiledARConfig:
    channels: int = 3  # 1 (grey) or 3 (RGB)
    tile: int = 32  # side of the square tiles the image is coded in
    stride: int = 4  # the latent map is the tile at 1 / stride resolution
    latent_channels: int = 2  # latent numbers per stride x stride block; 0: no latent (see below)
    hidden: int = 64  # width of the encoder's and decoder's hidden layers
    features: int = 4  # numbers per pixel from the decoder
    head: int = 48  # width of the head's two hidden layers
    radius: int = 2  # context window: rows above and columns either side
    likelihood: str = "logistic"  # 8-bit levels (the only value set this model codes)
    mixtures: int = 1  # logistics per channel (one: no mixture weights)

    def __post_init__(self):
        for name, value, low, top in (("channels", self.channels, 1, 3), ("tile", self.tile, 4, 256),
                                      ("stride", self.stride, 1, 16), ("latent_channels", self.latent_channels, 0, 16),
                                      ("hidden", self.hidden, 1, 1024), ("features", self.features, 1, 64),
                                      ("head", self.head, 1, 256), ("radius", self.radius, 1, 4),
                                      ("mixtures", self.mixtures, 1, 8)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= top:
                raise ValueError(f"{name} must be an integer in {low}..{top}, got {value!r}")
        if self.channels == 2:
            raise ValueError("channels must be 1 (grey) or 3 (RGB)")
        if self.tile % self.stride:
            raise ValueError(f"tile ({self.tile}) must be a multiple of stride ({self.stride})")
        if self.mixtures > 1 and self.latent_channels:
            raise ValueError("a mixture head codes without a latent (latent_channels=0): the photo models' latent "
                             "carries nothing, and bits back through a mixture is not built")
        if self.likelihood != "logistic":
            raise ValueError(f"a tiled model codes 8-bit levels (likelihood 'logistic'), got {self.likelihood!r}")

    @property
    def height(self) -> int:
        return self.tile

    @property
    def width(self) -> int:
        return self.tile

    @property
    def pixels(self) -> int:
        """Pixels per tile."""
        return self.tile * self.tile

    @property
    def dims(self) -> int:
        """Coded values per tile (pixels x channels): what bits per dimension divide by."""
        return self.pixels * self.channels

    @property
    def blocks(self) -> int:
        """Latent blocks per tile side."""
        return self.tile // self.stride

    @property
    def latent(self) -> int:
        """Latent numbers per tile."""
        return self.blocks * self.blocks * self.latent_channels

    @property
    def neighbours(self) -> int:
        return len(context_offsets(self.radius))

    @property
    def head_inputs(self) -> int:
        """The head reads each neighbour's difference from the reference, the reference, and the
        features."""
        return (self.neighbours + 1) * self.channels + EDGE_FLAGS + (self.features if self.latent_channels else 0)

    @property
    def outputs(self) -> int:
        """Likelihood parameters per pixel, in this order: each channel's component means, then
        their log-scales (channel-major), for RGB the three coupling coefficients of each
        component (coefficient-major), and with a mixture each channel's component logits."""
        k, m = self.channels, self.mixtures
        return 2 * k * m + (3 * m if k == 3 else 0) + (k * m if m > 1 else 0)

    @property
    def codes(self) -> Pixels:
        """What the model codes: 8-bit images of its channels, of any size."""
        return Pixels(channels=self.channels, two_valued=False, height=None, width=None, tile=self.tile)

    def to_dict(self) -> dict:
        # Without a mixture the settings are those of the models made before mixtures: the
        # same dict, so their files (which record it) and archives stay byte for byte the same.
        values = asdict(self)
        if values["mixtures"] == 1:
            del values["mixtures"]
        return values
