"""Integer 2-D convolutions for the coding path, on the integer layers' contract.

A convolution is a matrix product of each output position's input patch (its k x k window over
every input channel, zero outside the image) with the kernel: `IntegerConv2d` cuts the input
into those patches and runs an `IntegerLayer` (models/integer_mlp.py) on them, so every number
follows the same rules as the MLP layers: integer weights with one power-of-two scale per output
channel, fixed-point activations, every partial sum of a product proven below 2^53 (per output
channel: the sum of its |weights| times the input bound), requantisation by IEEE operations on
single values. The backward pass (for K-step inference) is the layer's, on the patches, whose
gradients are then added back onto the input positions they came from: at most k x k integers
below 2^25 each, so that sum is exact too, and it is clipped like every other gradient.

Masks (a causal window, say) are zeros in the kernel, set before freezing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .integer_mlp import GRADIENT_MAX, IntegerLayer, quantise_layer


@dataclass
class IntegerConv2d:
    """A k x k convolution, stride 1, zero padding `padding` on every side, on images (N, C, H, W)
    of float64 integers; the kernel as the weight (C * k * k, out) of `layer`."""

    layer: IntegerLayer
    in_channels: int
    kernel: int
    padding: int

    @property
    def out_channels(self) -> int:
        return self.layer.weight.shape[1]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, out, H', W'), H' = H + 2 padding - kernel + 1."""
        patches, (n, height, width) = self._patches(x)
        out = self.layer.forward(patches)
        return np.ascontiguousarray(out.reshape(n, height, width, -1).transpose(0, 3, 1, 2))

    def backward(self, gradient: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """The gradient at the input (N, C, H, W) of one at the output (N, out, H', W'), both in
        2^-GRADIENT_BITS units."""
        n, channels, height, width = input_shape
        k, p = self.kernel, self.padding
        out_h, out_w = gradient.shape[2], gradient.shape[3]
        rows = np.ascontiguousarray(gradient.transpose(0, 2, 3, 1)).reshape(-1, self.out_channels)
        patches = self.layer.backward(rows).reshape(n, out_h, out_w, channels, k, k)
        padded = np.zeros((n, channels, height + 2 * p, width + 2 * p))
        for di in range(k):
            for dj in range(k):
                padded[:, :, di : di + out_h, dj : dj + out_w] += patches[:, :, :, :, di, dj].transpose(0, 3, 1, 2)
        inner = padded[:, :, p : p + height, p : p + width]
        return np.clip(inner, -GRADIENT_MAX, GRADIENT_MAX)

    def _patches(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
        """Every output position's window as a row (N * H' * W', C * k * k), channel-major as
        torch lays out a kernel (C, k, k)."""
        k, p = self.kernel, self.padding
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (N, {self.in_channels}, H, W), got {x.shape}")
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))  # (N, C, H', W', k, k)
        n, _, out_h, out_w = windows.shape[:4]
        rows = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * out_h * out_w, self.in_channels * k * k)
        return rows, (n, out_h, out_w)


def quantise_conv(weight: np.ndarray, bias: np.ndarray, padding: int, in_bits: int, in_max: float, out_bits: int,
                  low, high) -> IntegerConv2d:
    """The integer form of a float convolution, weight (out, C, k, k) as torch keeps it."""
    weight = np.asarray(weight, dtype=np.float64)
    out_channels, in_channels, kernel, kernel_w = weight.shape
    if kernel != kernel_w:
        raise ValueError("square kernels only")
    matrix = weight.reshape(out_channels, in_channels * kernel * kernel).T
    layer = quantise_layer(matrix, bias, in_bits, in_max, out_bits, low, high)
    return IntegerConv2d(layer, in_channels, kernel, padding)
