"""Training data for models that code images of any size: random square patches of a set of
images (a folder of photos, or an array stack), with horizontal flips as augmentation.

Each patch comes from an image drawn uniformly (so each image, large or small, counts the same),
at a uniform position, flipped left-right with probability 1/2. The draw comes from one numpy
Generator, so a seed gives the same patches on every machine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: Path, channels: int) -> np.ndarray:
    """An image file as uint8 (H, W, channels): grey for 1 channel, RGB for 3."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L" if channels == 1 else "RGB")).reshape(image.height, image.width, channels)


def folder_images(folder: Path, channels: int) -> list[np.ndarray]:
    """Every image file under folder (sorted by path, so the set is the same everywhere)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return [read_image(p, channels) for p in files]


def stack_images(array: np.ndarray, channels: int) -> list[np.ndarray]:
    """A uint8 stack (N, H, W) or (N, H, W, C) as a list of (H, W, channels) images."""
    if array.dtype != np.uint8 or array.ndim not in (3, 4):
        raise ValueError(f"images must be a uint8 stack (N, H, W[, C]), got {array.dtype} {array.shape}")
    if array.ndim == 3:
        array = array[..., None]
    if array.shape[-1] != channels:
        raise ValueError(f"a {channels}-channel model needs {channels}-channel images, got {array.shape[-1]}")
    return list(array)


def random_patches(images: list[np.ndarray], size: int, count: int, seed: int) -> np.ndarray:
    """(count, size, size, C) uint8 patches of the images (each at least size x size)."""
    usable = [image for image in images if image.shape[0] >= size and image.shape[1] >= size]
    if not usable:
        raise ValueError(f"no image is at least {size}x{size}")
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, usable[0].shape[2]), dtype=np.uint8)
    which = rng.integers(0, len(usable), count)
    flips = rng.random(count) < 0.5
    for n, (k, flip) in enumerate(zip(which, flips)):
        image = usable[k]
        top = rng.integers(0, image.shape[0] - size + 1)
        left = rng.integers(0, image.shape[1] - size + 1)
        patch = image[top : top + size, left : left + size]
        out[n] = patch[:, ::-1] if flip else patch
    return out
