"""What every frozen architecture implements, and the parts most of them share.

A frozen model codes images. Subclasses set `architecture` (their registry name, recorded in
the frozen file and in every archive) and `config` (with `height`, `width`, `pixels` and
`likelihood`), and implement:

- `batch_codec(settings, first_index, n)`: the bits-back codec of n images (symbols (n, pixels)),
  the first of which is image `first_index` of the stream;
- `codelength_bits(symbols, settings)`: per image, the bits coding it takes (the classic
  fallback, cli/fallback.py, compares it with the classic codecs' sizes);
- `freeze(trained_model)` (a classmethod) and `to_tensors()` / `from_tensors(config, tensors)`.

Which images a model takes and how they become symbols (`accepts`, `to_symbols`,
`from_symbols`) have defaults here for single-channel 8-bit images: an architecture for other
images (colour, other depths) overrides them.
"""
from __future__ import annotations

import numpy as np


_CHUNK_VALUES = 1 << 22


def binary_scale(images) -> int | None:
    """The one definition of a binary image stack: 1 if its values are within {0, 1}, 255 if
    within {0, 255}, else None. Looked at a run of images at a time: np.unique of a whole stack
    would sort a copy of it, and `images` may be any stack that gives arrays for slices of
    images (cli/sources.py reads a large file's images as they are asked for)."""
    per_image = max(1, int(np.prod(images.shape[1:], dtype=np.int64)))
    step = max(1, _CHUNK_VALUES // per_image)
    values = set()
    for start in range(0, len(images), step):
        values.update(np.unique(images[start : start + step]).tolist())
        if not (values <= {0, 1} or values <= {0, 255}):
            return None
    return 255 if values - {0, 1} else 1


def as_zero_one(images: np.ndarray) -> tuple[np.ndarray, int]:
    """Two-valued images as 0/1 (uint8, same shape) and the scale that gives them back; a
    ValueError if they are not two-valued."""
    scale = binary_scale(images)
    if scale is None:
        raise ValueError("a Bernoulli model needs binary images (two-valued: 0/1 or 0/255); threshold them first")
    return (images // scale).astype(np.uint8), scale


class FrozenModel:
    architecture: str
    config: object

    def accepts(self, images: np.ndarray) -> bool:
        """Whether this model codes the uint8 stack (N, H, W)."""
        config = self.config
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (config.height, config.width):
            return False
        return config.likelihood != "bernoulli" or binary_scale(images) is not None

    def to_symbols(self, images: np.ndarray, scale: int | None = None) -> tuple[np.ndarray, int]:
        """(symbols (N, pixels) uint8, scale): scale is what symbols are multiplied by to give
        pixels; found from the images, or given (the scale of a whole record, of which these
        images are a part)."""
        if self.config.likelihood != "bernoulli":
            scale = 1
        elif scale is None:
            images, scale = as_zero_one(images)
        else:
            if not np.all((images == 0) | (images == scale)):
                raise ValueError(f"a Bernoulli model's images of scale {scale} must be 0 or {scale}")
            images = images // np.uint8(scale)
        return images.reshape(len(images), -1).astype(np.uint8, copy=False), scale

    def from_symbols(self, symbols: np.ndarray, scale: int) -> np.ndarray:
        return (symbols * scale).astype(np.uint8).reshape(len(symbols), self.config.height, self.config.width)

    def batch_codec(self, settings, first_index: int, n_images: int):
        raise NotImplementedError

    def codelength_bits(self, symbols: np.ndarray, settings) -> np.ndarray:
        raise NotImplementedError
