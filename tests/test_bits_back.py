"""Bits-back with a tiny hand-made latent variable model (no torch)."""
import numpy as np

from bbzip import bbans
from bbzip.bbans import Message

BUCKET_BITS = 6
PRECISION = 16


def _model(n_lanes, n_pixels, rng):
    weights = rng.normal(0, 2, size=(n_pixels,))
    centres = bbans.bucket_centres(BUCKET_BITS)

    def likelihood(z_index):
        z = centres[z_index] / 2.0**16
        logits = z[..., None] * weights  # (lanes, pixels)
        return bbans.Bernoulli(logits=bbans.to_fixed(logits, 12), precision=PRECISION)

    def posterior(x):
        mean = (x - 0.5) @ weights / (1 + weights @ weights)
        return bbans.BucketedGaussian(bbans.to_fixed(mean, 16), np.full(mean.shape, 19661), BUCKET_BITS, PRECISION)

    prior = bbans.BucketPrior(BUCKET_BITS)
    return bbans.bits_back(prior, likelihood, posterior)


def test_bits_back_many_items_on_one_message():
    rng = np.random.default_rng(0)
    n_lanes, n_pixels, n_items = 7, 20, 30
    codec = _model(n_lanes, n_pixels, rng)
    items = [rng.integers(0, 2, size=(n_lanes, n_pixels)) for _ in range(n_items)]
    message = Message.empty((n_lanes,), seed=5)
    for x in items:
        message = codec.push(message, x)
    data = message.to_bytes()

    decoder = Message.from_bytes(data, (n_lanes,), seed=5)
    for x in reversed(items):
        decoder, decoded = codec.pop(decoder)
        np.testing.assert_array_equal(decoded, x)
    decoder.check_initial()


def test_bits_back_saves_bits_over_coding_z_without_getting_them_back():
    rng = np.random.default_rng(1)
    n_lanes, n_pixels, n_items = 4, 20, 40
    codec = _model(n_lanes, n_pixels, rng)
    items = [rng.integers(0, 2, size=(n_lanes, n_pixels)) for _ in range(n_items)]
    message = Message.empty((n_lanes,), seed=1)
    for x in items:
        message = codec.push(message, x)
    with_bits_back = len(message.to_bytes())
    # The same items with z = the posterior's first draw pushed under the prior, no bits returned.
    plain_bits = n_items * n_lanes * (BUCKET_BITS + n_pixels)  # upper bound: prior + <= 1 bit per pixel
    assert 8 * with_bits_back < plain_bits
