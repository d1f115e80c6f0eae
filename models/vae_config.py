"""The MLP VAE's architecture settings and likelihood constants (no torch: the coding path uses
them too)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .pixels import Pixels

LIKELIHOODS = ("bernoulli", "logistic")
# The logistic's log-scale, in level units. The floor matters: a pixel the model is sure of
# costs about |x - mean| / scale nats when it is wrong, so a floor of -7 (scale 0.001 level)
# let single pixels cost 10^5 nats and made training spike. -2 (scale 0.135 level) is
# PixelCNN++'s floor of -7 in [-1, 1] units; certainty at 0 and 255 comes from the open end
# bins with a mean beyond them (the mean is unconstrained), not from a tiny scale.
LOG_SCALE_MIN, LOG_SCALE_MAX = -2.0, 7.0
# The precision (bits) of the coder's likelihood tables; the model's likelihood includes the
# floor they put under every symbol (see with_coder_floor).
LIKELIHOOD_PRECISION = 24


@dataclass(frozen=True)
class VAEConfig:
    likelihood: str  # "bernoulli" (binary images) or "logistic" (8-bit grey)
    latent: int = 10
    hidden: int = 500
    height: int = 28
    width: int = 28

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        # Bounds before anything is allocated from them (a model file is input too).
        for name, value, top in (("latent", self.latent, 256), ("hidden", self.hidden, 4096),
                                 ("height", self.height, 4096), ("width", self.width, 4096)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise ValueError(f"{name} must be an integer in 1..{top}, got {value!r}")
        if self.pixels > 1 << 16:
            raise ValueError(f"images of {self.height}x{self.width} are too large for an MLP VAE")

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def codes(self) -> Pixels:
        """What the model codes: single-channel images of its size, two-valued for a Bernoulli
        likelihood, 8-bit for a logistic one."""
        return Pixels(channels=1, two_valued=self.likelihood == "bernoulli", height=self.height, width=self.width)

    def to_dict(self) -> dict:
        return asdict(self)
