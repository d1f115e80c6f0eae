"""Images the shipped models were not trained on, made from the MNIST test set.

    inverted   255 - x (binary: the other value)
    rotated    a quarter turn
    shifted    moved 6 pixels right and down (what leaves the frame is dropped)
    noisy      grey: Gaussian noise, sigma 25, clipped; binary: 5% of pixels flipped
    gradients  (grey only) smooth random ramps with a ripple: no digit at all

Every set is made from the same first images of the test set with a fixed seed, so the figures
of benchmarks/archive.py and benchmarks/compression.py are of the same images each run.
"""
from __future__ import annotations

import numpy as np

from bbzip.models.data import load_named

KINDS = ("mnist", "inverted", "rotated", "shifted", "noisy", "gradients")


def image_sets(binary: bool, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """{kind: uint8 images (count, 28, 28)}: MNIST itself, then the sets unlike it."""
    images = load_named("binary-mnist" if binary else "mnist", "test")[:count]
    top = images.max()
    rng = np.random.default_rng(seed)
    shifted = np.zeros_like(images)
    shifted[:, 6:, 6:] = images[:, :-6, :-6]
    sets = {"mnist": images, "inverted": (top - images).astype(np.uint8),
            "rotated": np.ascontiguousarray(np.rot90(images, 1, axes=(1, 2))), "shifted": shifted}
    if binary:
        sets["noisy"] = np.where(rng.random(images.shape) < 0.05, top - images, images).astype(np.uint8)
    else:
        sets["noisy"] = np.clip(images + rng.normal(0, 25, images.shape).round(), 0, 255).astype(np.uint8)
        rows, columns = np.mgrid[:28, :28]
        ramps = [128 + a * columns + b * rows + 20 * np.sin(columns / c) for a, b, c in
                 zip(rng.uniform(-6, 6, count), rng.uniform(-6, 6, count), rng.uniform(2, 6, count))]
        sets["gradients"] = np.clip(ramps, 0, 255).astype(np.uint8)
    return sets
