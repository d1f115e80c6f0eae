"""Integer networks for the coding path: MLPs in which every number is an integer.

Freezing turns a trained layer into integer weights with one power-of-two scale per output
column (`quantise_layer`). Running it is exact on every machine:

- matrix products are float64 BLAS calls on integer-valued matrices whose every partial sum is
  an integer below 2^53 (checked per layer, `check_bounds`), so any summation order, blocking,
  FMA use or thread count gives the same result: the exact one;
- requantisation to the next layer's fixed point is IEEE multiplication by a power of two, +0.5
  and floor (round half up), ReLU is max(., 0), and clipping bounds every activation. These are
  correctly rounded operations on single values, so they too give the same bits everywhere.
  Where a layer's bounds allow, the power of two and the +0.5 are folded into the weights and
  bias (`Requantised`): the product then gives (x @ weight + bias) * 2^-shift + 0.5 exactly,
  since every partial sum is a multiple of one power of two and small enough to hold it, which
  saves three passes over every output.

No transcendental function appears here; what follows the network (sigmoid, exp, softplus,
the normal CDF) comes from bbans.lookup's integer tables.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

WEIGHT_LIMIT = 1 << 16  # |integer weight| < 2^16
EXACT_LIMIT = 2.0**53  # every partial sum of a product stays below this
ACTIVATION_BITS = 16  # hidden activations in 2^-16 units ...
ACTIVATION_MAX = float((1 << 24) - 1)  # ... clipped to [0, 256)
GRADIENT_BITS = 14  # backpropagated gradients in 2^-14 units ...
GRADIENT_MAX = float((1 << 25) - 1)  # ... clipped to |g| < 2048
MAX_WEIGHT_BITS = 64  # |power-of-two scale| of a weight column
# From this many values on, clip_in_place clips in one pass; below it np.clip's Python wrapper
# costs more than the second pass it saves.
CLIP_IN_ONE_PASS = 4096


class FrozenModelError(ValueError):
    """Integer weights that would break exactness (too large, or partial sums past 2^53)."""


@dataclass
class IntegerLayer:
    """y = clip(round((x @ weight + bias) * 2^-shift)), x in 2^-in_bits units, y in 2^-out_bits.

    `weight` (in, out) and `bias` (out,) are float64 arrays of integers. Each output column j has
    its own power-of-two scale: the real weight is weight[:, j] * 2^-weight_bits[j], the real
    bias bias[j] * 2^-(weight_bits[j] + in_bits). (One scale per layer would leave small-weight
    columns, such as the log-scale head beside the mean head, with a few bits.)
    """

    weight: np.ndarray
    bias: np.ndarray
    weight_bits: np.ndarray  # int64 (out,)
    in_bits: int
    out_bits: int
    in_max: float  # bound on |input| (integer units)
    low: np.ndarray | float  # output clip, integer units (0 for ReLU layers)
    high: np.ndarray | float

    def __post_init__(self):
        self.weight_bits = np.asarray(self.weight_bits, dtype=np.int64)
        if self.weight_bits.shape != self.bias.shape or np.any(np.abs(self.weight_bits) > MAX_WEIGHT_BITS):
            raise FrozenModelError(f"one weight scale (|bits| <= {MAX_WEIGHT_BITS}) per output column expected")
        self.check_bounds()
        self.scale_out = np.ldexp(1.0, -(self.weight_bits + self.in_bits - self.out_bits))
        self._backward_cache = {}
        self.requantised = Requantised(self.weight, self.bias, self.scale_out, self.in_max, self.low, self.high)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.requantised(x)

    @functools.cached_property
    def groups(self) -> list:
        """The backward pass's groups (_backward_groups), made when one first runs: coding at
        K = 0 never does, and a model sent to the worker processes goes without them."""
        return _backward_groups(self.weight, self.weight_bits)

    def forward_columns(self, which: np.ndarray) -> "Requantised":
        """The forward pass of these output columns alone (the same integers in them), made without
        a layer's checks and backward pass (a check takes a few columns of a large layer a batch)."""
        return self.requantised.columns(which)

    def backward(self, gradient: np.ndarray, inputs: slice | None = None) -> np.ndarray:
        """The gradient at the input (2^-GRADIENT_BITS units) of one at the output (same units),
        in real terms: gradient @ real_weight.T, requantised and clipped like the forward pass;
        at the `inputs` alone where given (each input's gradient is its own sum: the same numbers)."""
        total = None
        for columns, weight_t in self._backward_weights(inputs):
            part = _product(gradient if columns is None else gradient[:, columns], weight_t)
            part += 0.5
            np.floor(part, out=part)
            if total is None:
                total = part
            else:
                total += part
        return clip_in_place(total, -GRADIENT_MAX, GRADIENT_MAX)

    def _backward_weights(self, inputs: slice | None):
        """The backward groups' (columns, transposed weight) for these inputs, contiguous (a
        column slice of the whole would make every product copy it), made once."""
        key = None if inputs is None else (inputs.start, inputs.stop)
        if key not in self._backward_cache:
            self._backward_cache[key] = [(columns, weight_t if inputs is None else np.ascontiguousarray(weight_t[:, inputs]))
                                         for columns, weight_t in self.groups]
        return self._backward_cache[key]

    def check_bounds(self) -> None:
        weight = np.abs(self.weight)
        if weight.max(initial=0) >= WEIGHT_LIMIT or not np.array_equal(self.weight, np.round(self.weight)):
            raise FrozenModelError(f"weights must be integers below {WEIGHT_LIMIT}")
        forward = weight.sum(axis=0) * self.in_max + np.abs(self.bias)
        backward = weight.sum(axis=1) * GRADIENT_MAX  # per group, at most this
        if forward.max(initial=0) >= EXACT_LIMIT or backward.max(initial=0) >= EXACT_LIMIT:
            raise FrozenModelError("partial sums could reach 2^53; the layer cannot be run exactly")


def relu_passes(activation: np.ndarray) -> np.ndarray:
    """Where a ReLU layer's output passes gradient back: neither cut at 0 nor saturated at
    ACTIVATION_MAX (one mask, built in place)."""
    mask = activation > 0
    mask &= activation < ACTIVATION_MAX
    return mask


def clip_in_place(values: np.ndarray, low, high) -> np.ndarray:
    """min(max(values, low), high), in place: in one pass (np.clip) for large arrays, as two
    ufuncs for small ones (an autoregressive decode's one-row batches), where np.clip's Python
    wrapper costs more than the second pass. The same numbers either way."""
    if values.size >= CLIP_IN_ONE_PASS:
        return np.clip(values, low, high, out=values)
    np.maximum(values, low, out=values)
    return np.minimum(values, high, out=values)


def _product(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x @ weight; from a single column (a one-output layer's backward pass: the binary head's),
    as the outer product it is, which BLAS runs at a fraction of its speed (the same products,
    and no sums: the same numbers)."""
    if x.shape[-1] == 1:
        return x * weight
    return x @ weight


class Requantised:
    """x -> clip(floor((x @ weight + bias) * scale_out + 0.5), low, high) for |x| <= in_max: an
    integer layer's forward pass (or several layers' side by side, each column with its own
    power-of-two scale and bounds).

    Folded, the product is x @ (weight * scale_out) + (bias * scale_out + 0.5). Scaling by a
    power of two is exact, and every term of column j is then a multiple of
    grid_j = min(scale_out_j, 1/2), so every partial sum, in any order, is exact while it stays
    below 2^53 grid_j; the bound on the largest (with a factor of two for the rounding of the
    bound itself) decides, per layer, between the folded form and the plain one (product, + bias,
    x scale, + 0.5). Both give the same integers.
    """

    def __init__(self, weight: np.ndarray, bias, scale_out, in_max: float, low, high):
        self.low, self.high = low, high
        scale_out = np.broadcast_to(np.asarray(scale_out, dtype=np.float64), np.shape(bias))
        reach = (np.abs(weight).sum(axis=0) * in_max + np.abs(bias)) * scale_out + 0.5
        self.folded = bool(np.all(reach < EXACT_LIMIT / 2 * np.minimum(scale_out, 0.5)))
        if self.folded:
            self.weight, self.offset, self.scale_out = weight * scale_out, bias * scale_out + 0.5, None
        else:
            self.weight, self.offset, self.scale_out = weight, bias, scale_out
        # Row-major: a file's weights come column-major (torch's (out, in), transposed), and BLAS
        # multiplies by a narrow column-major matrix (a head's last layer, two outputs wide) or by
        # a block of its rows (`partial_sum`'s) far slower than by the same numbers row-major.
        self.weight = np.ascontiguousarray(self.weight)

    def columns(self, which: np.ndarray) -> "Requantised":
        """The same outputs for these columns alone: each column's integers do not depend on the
        other columns, and a column's bound holds whichever columns are beside it."""
        def pick(values):
            return values if np.ndim(values) == 0 else values[which]

        part = object.__new__(Requantised)
        part.low, part.high, part.folded = pick(self.low), pick(self.high), self.folded
        part.weight, part.offset = self.weight[:, which], pick(self.offset)
        part.scale_out = None if self.scale_out is None else self.scale_out[which]
        return part

    def __call__(self, x: np.ndarray) -> np.ndarray:
        accumulator = x @ self.weight
        accumulator += self.offset
        return self._requantise(accumulator)

    def partial_sum(self, x: np.ndarray, inputs: slice) -> np.ndarray:
        """x @ weight[inputs] + offset, x the values of those inputs alone: the part of the
        accumulator they give, for `completed` to finish once the other inputs are known (inputs
        that stay the same over several passes, such as a pixel's context over K steps)."""
        accumulator = x @ self.weight[inputs]
        accumulator += self.offset
        return accumulator

    def completed(self, x: np.ndarray, inputs: slice, partial: np.ndarray) -> np.ndarray:
        """The outputs, from `partial_sum` of the other inputs and x, the values of `inputs`:
        the accumulator is the same sum in another order, and every order is exact."""
        accumulator = x @ self.weight[inputs]
        accumulator += partial
        return self._requantise(accumulator)

    def _requantise(self, accumulator: np.ndarray) -> np.ndarray:
        if self.scale_out is not None:
            accumulator *= self.scale_out
            accumulator += 0.5
        np.floor(accumulator, out=accumulator)
        return clip_in_place(accumulator, self.low, self.high)

    forward = __call__  # (as an IntegerLayer's, for what takes a layer: decode_latents' last_layer)


class SideBySide:
    """Integer layers that read the same input, run as one product: the columns of a product
    do not depend on each other, so each layer's outputs are the integers it gives alone.
    `forward` returns each layer's outputs."""

    def __init__(self, layers: list[IntegerLayer]):
        def each(values):
            return np.concatenate([np.broadcast_to(np.asarray(v, dtype=np.float64), layer.bias.shape)
                                   for v, layer in zip(values, layers)])

        self.requantised = Requantised(np.hstack([layer.weight for layer in layers]), each([layer.bias for layer in layers]),
                                       each([layer.scale_out for layer in layers]), max(layer.in_max for layer in layers),
                                       each([layer.low for layer in layers]), each([layer.high for layer in layers]))
        ends = np.cumsum([len(layer.bias) for layer in layers]).tolist()
        self.columns = [slice(lo, hi) for lo, hi in zip([0] + ends[:-1], ends)]

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        outputs = self.requantised(x)
        return [outputs[:, columns] for columns in self.columns]


def _backward_groups(weight: np.ndarray, weight_bits: np.ndarray):
    """How the backward pass sums over output columns of different scales, exactly.

    Columns are taken in order of their scale and merged into groups while the group stays
    exact: within a group every column is brought to the group's finest scale by an exact
    integer multiplication (weight * 2^(finest - bits)), and every partial sum of the group's
    product must stay below 2^53. Each group's product is requantised on its own and the integer
    results are added. Returns (columns or None for all, weight.T of the group x 2^-finest): the
    power of two folded into the weights is exact, and every partial sum of the product is then
    an exact multiple of 2^-finest, the integer sum scaled, so the product needs no pass of its
    own to scale it.
    """
    groups, pending = [], []

    def close(group_bits):
        columns = np.flatnonzero(np.isin(weight_bits, group_bits))
        finest = int(max(group_bits))
        scaled = np.ldexp(weight[:, columns], finest - weight_bits[columns])
        everything = len(columns) == weight.shape[1]
        groups.append((None if everything else columns, np.ascontiguousarray(np.ldexp(scaled.T, -finest))))

    for bits in np.unique(weight_bits):
        candidate = pending + [int(bits)]
        columns = np.isin(weight_bits, candidate)
        widest = np.abs(np.ldexp(weight[:, columns], max(candidate) - weight_bits[columns])).sum(axis=1).max(initial=0)
        if pending and widest * GRADIENT_MAX >= EXACT_LIMIT:
            close(pending)
            candidate = [int(bits)]
        pending = candidate
    if pending:
        close(pending)
    return groups


def quantise_layer(weight: np.ndarray, bias: np.ndarray, in_bits: int, in_max: float, out_bits: int,
                   low, high) -> IntegerLayer:
    """Integer form of a float layer y = x @ weight + bias, weight (in, out).

    Each column's scale is the largest power of two that keeps its |weights| below 2^15; all are
    lowered together until every partial sum (forward and backward) provably stays below 2^53.
    """
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
        raise FrozenModelError("the model has non-finite weights (NaN or infinity); it cannot code")
    largest = np.abs(weight).max(axis=0)
    # frexp is exact (unlike log2), so freezing the same file gives the same integers anywhere.
    _, exponent = np.frexp(np.where(largest > 0, largest, 1.0))  # largest = m 2^exponent, 0.5 <= m < 1
    weight_bits = 15 - exponent.astype(np.int64)
    # Lowering the scales ends: at the lowest scale IntegerLayer takes, a layer still refused has
    # weights too large to freeze (a diverged model's), and is refused here too.
    while weight_bits.min(initial=0) >= -MAX_WEIGHT_BITS:
        try:
            return IntegerLayer(np.round(np.ldexp(weight, weight_bits)), np.round(np.ldexp(bias, weight_bits + in_bits)),
                                weight_bits, in_bits, out_bits, in_max, low, high)
        except FrozenModelError:
            weight_bits = weight_bits - 1
    raise FrozenModelError(f"weights up to {float(largest.max()):.3g} are too large to run exactly; the model cannot code")
