"""The convolutional VAE's settings (no torch: the coding path uses them too).

The paper's CIFAR-10 system: a ResNet VAE on small colour images of one size. The encoder halves the
resolution twice and the decoder doubles it twice, so the latent is a map of `latent_channels`
numbers at a quarter of the image's height and width (4 x 8 x 8 for 32 x 32), with a standard normal prior.
Each half-resolution step is a space-to-depth rearrangement (each 2 x 2 block's values become
channels) followed by a 3 x 3 convolution, and each doubling a 3 x 3 convolution followed by
depth-to-space: the same reach as the strided and transposed convolutions of the paper's
network, written as stride-1 convolutions so that one integer convolution serves every layer.
`blocks` residual blocks (ReLU, conv, ReLU, conv, added to their input) sit at the latent's
resolution on each side.

The likelihood is a discretised logistic per channel, the channels coupled linearly as
PixelCNN++ (G's mean moves with R, B's with R and G): the decoder gives every pixel a mean and a
log-scale per channel and three coupling coefficients.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .pixels import Pixels

# The coupling reads a channel's value as its distance from this level (the coefficients then
# move the later means little for mid-grey pixels, and the shift is an exact integer product).
COUPLING_CENTRE = 128
COEFF_LIMIT = 4.0  # the coder clips coupling coefficients to +-4 (bbans.DiscretisedLogisticRGB)
SCALE_STEPS = 2  # space-to-depth steps of the encoder (and depth-to-space of the decoder)


@dataclass(frozen=True)
class ConvVAEConfig:
    channels: int = 3  # 1 (grey) or 3 (RGB)
    height: int = 32  # the images' size
    width: int = 32
    filters: int = 64  # channels of every hidden convolution
    blocks: int = 2  # residual blocks on each side
    latent_channels: int = 4  # latent numbers per position of the quarter-resolution map
    likelihood: str = "logistic"  # 8-bit levels (the only value set this model codes)

    def __post_init__(self):
        for name, value, low, top in (("channels", self.channels, 1, 3), ("height", self.height, 4, 256),
                                      ("width", self.width, 4, 256),
                                      ("filters", self.filters, 1, 512), ("blocks", self.blocks, 0, 16),
                                      ("latent_channels", self.latent_channels, 1, 64)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= top:
                raise ValueError(f"{name} must be an integer in {low}..{top}, got {value!r}")
        if self.channels == 2:
            raise ValueError("channels must be 1 (grey) or 3 (RGB)")
        if self.height % (1 << SCALE_STEPS) or self.width % (1 << SCALE_STEPS):
            raise ValueError(f"height and width ({self.height}, {self.width}) must be multiples of {1 << SCALE_STEPS}")
        if self.likelihood != "logistic":
            raise ValueError(f"a convolutional VAE codes 8-bit levels (likelihood 'logistic'), got {self.likelihood!r}")

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def dims(self) -> int:
        """Coded values per image (pixels x channels): what bits per dimension divide by."""
        return self.pixels * self.channels

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """The latent map: (channels, height, width)."""
        return self.latent_channels, self.height >> SCALE_STEPS, self.width >> SCALE_STEPS

    @property
    def latent(self) -> int:
        """Latent numbers per image."""
        channels, height, width = self.latent_shape
        return channels * height * width

    @property
    def outputs(self) -> int:
        """Likelihood parameters per pixel: a mean and log-scale per channel, and for RGB the
        three coupling coefficients."""
        return 2 if self.channels == 1 else 9

    @property
    def codes(self) -> Pixels:
        """What the model codes: 8-bit images of its channels and size."""
        return Pixels(channels=self.channels, two_valued=False, height=self.height, width=self.width)

    def to_dict(self) -> dict:
        return asdict(self)
