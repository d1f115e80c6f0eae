"""Integer convolutions (models/integer_conv.py): exactly the convolution of their own integers,
and a backward pass within its rounding of torch's gradient."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bbzip.models.integer_conv import quantise_conv
from bbzip.models.integer_mlp import GRADIENT_BITS


def _conv(seed, in_channels, out_channels, kernel, padding, in_max=255.0, out_bits=8):
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.3, (out_channels, in_channels, kernel, kernel)) * rng.choice([1e-3, 1.0, 20.0], size=(out_channels, 1, 1, 1))
    bias = rng.normal(0, 1, out_channels)
    conv = quantise_conv(weight, bias, padding, 0, in_max, out_bits, -(2.0**40), 2.0**40)
    x = rng.integers(0, int(in_max) + 1, (2, in_channels, 9, 7)).astype(np.float64)
    return conv, x, rng


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 6), st.sampled_from([1, 3, 5]), st.integers(0, 2))
def test_the_integer_convolution_is_exactly_that_of_its_own_integers(seed, in_channels, out_channels, kernel, padding):
    """Against torch's float64 convolution of the dequantised kernel: every partial sum is a
    multiple of the column's scale below 2^53, so that convolution is exact too, and rounding
    it half up gives the integer layer's output bit for bit."""
    conv, x, _ = _conv(seed, in_channels, out_channels, kernel, padding)
    layer = conv.layer
    scale = np.ldexp(1.0, -layer.weight_bits)  # per output channel
    kernel_real = (layer.weight * scale).T.reshape(out_channels, in_channels, kernel, kernel)
    bias_real = layer.bias * scale
    reference = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(kernel_real), torch.from_numpy(bias_real),
                                           padding=padding).numpy()
    expected = np.floor(reference * 2.0**8 + 0.5)
    np.testing.assert_array_equal(conv.forward(x), expected)


@pytest.mark.parametrize("kernel, padding", [(3, 1), (5, 2), (3, 0)])
def test_the_backward_pass_follows_torch_s_gradient(kernel, padding):
    """Each patch's gradient is rounded to 2^-14 once (the layer's backward), then at most
    k x k of them are added: the error is at most k^2 / 2 units."""
    conv, x, rng = _conv(7, 3, 4, kernel, padding)
    out_shape = conv.forward(x).shape
    gradient = rng.normal(0, 1, out_shape)
    fixed = np.floor(gradient * 2**GRADIENT_BITS + 0.5)
    layer = conv.layer
    scale = np.ldexp(1.0, -layer.weight_bits)
    kernel_real = torch.from_numpy((layer.weight * scale).T.reshape(4, 3, kernel, kernel))
    x_torch = torch.from_numpy(x).requires_grad_(True)
    # the layer's real output is 2^-weight_bits x ... in its input's units; out_bits rescale it
    out = torch.nn.functional.conv2d(x_torch, kernel_real, padding=padding)
    out.backward(torch.from_numpy(fixed / 2**GRADIENT_BITS))
    reference = x_torch.grad.numpy() * 2**GRADIENT_BITS
    result = conv.backward(fixed, x.shape)
    assert result.shape == x.shape
    assert np.max(np.abs(result - reference)) <= kernel * kernel / 2 + 1e-6


def test_images_of_the_wrong_channels_are_refused():
    conv, x, _ = _conv(0, 3, 2, 3, 1)
    with pytest.raises(ValueError, match="expected images"):
        conv.forward(x[:, :2])
