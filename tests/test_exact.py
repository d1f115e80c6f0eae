"""The exact coding path (numerics 1): integer tables, integer networks, exact K-step inference."""
import hashlib
import io
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bbzip.bbans import lookup
from bbzip.models import api
from bbzip.models.architectures import freeze, load_frozen, save_frozen
from bbzip.models.coder_choice import Coder, default_settings, load_coder
from bbzip.models.frozen_mlp import optimise_posterior
from bbzip.models.integer_mlp import CLIP_IN_ONE_PASS, GRADIENT_MAX, FrozenModelError, IntegerLayer, quantise_layer
from bbzip.models.vae import MLPVAE, VAEConfig

# Digests of numerics version 1. A change here changes archives: it needs a new NUMERICS_VERSION.
GOLDEN_TABLES = {
    "sigmoid_table": "c7e2633b4e5cc02a",
    "exp_table": "bb30c2010ded1a33",
    "softplus_tail_table": "25deceba349615c9",
    "normal_cdf_table": "ddf9ee1503911580",
}
REFERENCES = {
    "sigmoid_table": lambda x: 1 / (1 + math.exp(-x)),
    "exp_table": math.exp,
    "softplus_tail_table": lambda x: math.log1p(math.exp(-x)),
    "normal_cdf_table": lambda x: 0.5 * math.erfc(-x / math.sqrt(2)),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_TABLES))
def test_tables_are_the_numerics_1_tables_and_correctly_rounded(name):
    table = getattr(lookup, name)()
    assert hashlib.sha256(table.values.tobytes()).hexdigest()[:16] == GOLDEN_TABLES[name]
    points = table.lo + np.arange(len(table.values)) / 2**table.step_bits
    reference = np.array([REFERENCES[name](x) for x in points]) * 2**table.value_bits
    assert np.abs(table.values - reference).max() <= 0.5 + 1e-6  # what rounding allows, and no more


def test_bucket_edges_and_centres():
    assert hashlib.sha256(lookup.bucket_edges(12).tobytes()).hexdigest()[:16] == "f31171166b1ea964"
    assert hashlib.sha256(lookup.bucket_centres(16).tobytes()).hexdigest()[:16] == "8c1bbb63c2760193"
    from statistics import NormalDist

    expected = np.array([NormalDist().inv_cdf(j / 1024) for j in range(1, 1024)])
    edges = lookup.bucket_edges(10) / 2**16
    assert np.all(np.diff(edges) > 0) and np.abs(edges - expected).max() < 2 * 2**-16


@settings(max_examples=40, deadline=None)
@given(st.integers(-(40 << 16), 40 << 16), st.integers(0, (1 << 16) - 1))
def test_interpolation_is_monotone_and_close(x, step):
    table = lookup.sigmoid_table()
    values = lookup.interpolate(table, np.array([x, x + step]), 16)
    assert values[0] <= values[1]
    assert abs(values[0] / 2**32 - 1 / (1 + math.exp(-min(max(x / 2**16, -700), 700)))) < 2e-8


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 30), st.sampled_from([1.0, 255.0, 2.0**20]))
def test_integer_layer_agrees_with_its_float_reference(seed, n_in, n_out, in_max):
    """Within the quantisation error: weights to 2^-15 of each column's largest, outputs rounded."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 1, (n_in, n_out)) * rng.choice([1e-3, 1.0, 30.0], size=n_out)
    bias = rng.normal(0, 1, n_out)
    layer = quantise_layer(weight, bias, 0, in_max, 8, -(2.0**40), 2.0**40)
    x = rng.integers(-int(in_max), int(in_max) + 1, (7, n_in)).astype(np.float64)
    exact = x @ weight + bias
    column_error = np.abs(x).sum(axis=1, keepdims=True) * np.ldexp(0.5, -layer.weight_bits) + np.ldexp(0.5, -layer.weight_bits)
    assert np.all(np.abs(layer.forward(x) / 2**8 - exact) <= column_error + 2**-9)


def _requantised_in_python_integers(x, layer) -> np.ndarray:
    """clip(floor((x @ weight + bias) * 2^-shift + 1/2)) of an IntegerLayer, in Python's integers."""
    shifts = (layer.weight_bits + layer.in_bits - layer.out_bits).tolist()
    rows = []
    for row in x.astype(np.int64).tolist():
        values = []
        for j, shift in enumerate(shifts):
            total = sum(a * int(w) for a, w in zip(row, layer.weight[:, j])) + int(layer.bias[j])
            values.append((total + (1 << (shift - 1))) >> shift if shift > 0 else total << -shift)
        rows.append(values)
    return np.clip(np.array(rows, dtype=np.float64), layer.low, layer.high)


@pytest.mark.parametrize("in_max, weight_limit, folds", [(2.0**24, 1 << 15, True), (2.0**37, 1 << 15, False)])
def test_a_layer_folds_its_scale_into_its_weights_only_where_that_stays_exact(in_max, weight_limit, folds):
    """Folded, a layer's power-of-two scale and +1/2 ride in the product; its every partial sum
    must then stay below 2^53 steps of the finer grid. A layer near that bound keeps the plain
    form; both give exactly the integers Python's arithmetic gives."""
    rng = np.random.default_rng(7)
    n_in, n_out = 2, 5
    weight = rng.integers(-weight_limit + 1, weight_limit, (n_in, n_out)).astype(np.float64)
    weight[:, 0] = weight_limit - 1  # one column at the bound
    bias = rng.integers(-(1 << 20), 1 << 20, n_out).astype(np.float64)
    layer = IntegerLayer(weight, bias, rng.integers(8, 30, n_out), 16, 16, in_max, -(2.0**40), 2.0**40)
    assert layer.requantised.folded is folds
    x = rng.integers(-int(in_max), int(in_max) + 1, (64, n_in)).astype(np.float64)
    x[0], x[1] = in_max, -in_max
    assert np.array_equal(layer.forward(x), _requantised_in_python_integers(x, layer))
    which = np.array([4, 0, 2])
    assert np.array_equal(layer.forward_columns(which)(x), _requantised_in_python_integers(x, layer)[:, which])
    # K-step inference sums a pixel's context once and its features at each step: the same integers
    context_part = layer.requantised.partial_sum(x[:, :1], slice(0, 1))
    assert np.array_equal(layer.requantised.completed(x[:, 1:], slice(1, None), context_part),
                          _requantised_in_python_integers(x, layer))


@pytest.mark.parametrize("rows", [3, 2000])
def test_a_layer_clips_to_its_columns_bounds_in_one_pass_or_two(rows):
    """A batch of CLIP_IN_ONE_PASS values or more is clipped by np.clip, a smaller one (a decode's
    step) by two ufuncs: each gives the integers Python's arithmetic gives, bounds that cut."""
    rng = np.random.default_rng(rows)
    weight = rng.integers(-(1 << 15) + 1, 1 << 15, (3, 4)).astype(np.float64)
    low, high = np.array([-5.0, 0.0, -100.0, 3.0]), np.array([5.0, 50.0, 100.0, 2.0**30])
    layer = IntegerLayer(weight, np.zeros(4), np.full(4, 20), 16, 16, 2.0**20, low, high)
    x = rng.integers(-(1 << 20), (1 << 20) + 1, (rows, 3)).astype(np.float64)
    assert (rows * 4 >= CLIP_IN_ONE_PASS) == (rows > 3)
    out = layer.forward(x)
    assert np.array_equal(out, _requantised_in_python_integers(x, layer))
    assert np.any(out == low) and np.any(out[:, :3] == high[:3])  # the bounds cut


@pytest.mark.parametrize("n_out, rows", [(1, 50), (3, 50), (3, 1000)])
def test_a_layer_s_backward_pass_gives_python_s_integers(n_out, rows):
    """gradient @ real_weight.T, rounded half up and clipped, as Python's integers give it; from a
    single output (the binary head's last layer) too, which runs as an outer product; a batch of
    CLIP_IN_ONE_PASS values or more clipped in one pass."""
    rng = np.random.default_rng(n_out)
    n_in = 6
    weight = rng.integers(-(1 << 15) + 1, 1 << 15, (n_in, n_out)).astype(np.float64)
    bits = rng.integers(10, 20, n_out)
    layer = IntegerLayer(weight, np.zeros(n_out), bits, 16, 16, 2.0**24, -(2.0**40), 2.0**40)
    gradient = rng.integers(-int(GRADIENT_MAX), int(GRADIENT_MAX) + 1, (rows, n_out)).astype(np.float64)
    finest = int(bits.max())  # these columns make one backward group
    expected = [[(sum(int(g) * int(weight[i, j]) << (finest - int(bits[j])) for j, g in enumerate(row))
                  + (1 << (finest - 1))) >> finest for i in range(n_in)] for row in gradient]
    expected = np.clip(np.array(expected, dtype=np.float64), -GRADIENT_MAX, GRADIENT_MAX)
    assert len(layer.groups) == 1 and np.array_equal(layer.backward(gradient), expected)
    assert np.array_equal(layer.backward(gradient, slice(2, None)), expected[:, 2:])


def test_a_model_that_codes_at_k0_makes_no_backward_pass():
    """A layer's backward groups are made when K-step inference first needs them: a model loaded
    to code at K = 0 (a default compress, a decompress of its archive) spends no time on them,
    and the copy of it each worker process is sent goes without them."""
    coder = load_coder("ar-binary-mnist-rha")
    layers = [layer for layer in _integer_layers(coder.model)]
    images = (np.random.default_rng(0).random((6, 28, 28)) < 0.2).astype(np.uint8)
    api.write_record(io.BytesIO().write, coder, images, default_settings(coder, len(images)), len(images), cores=1, checked=[])
    assert layers and not any("groups" in vars(layer) for layer in layers)
    sent = len(pickle.dumps(coder.model))
    assert all(len(layer.groups) for layer in layers)  # made now, kept for the next K steps
    assert sent < len(pickle.dumps(coder.model))


def _integer_layers(value, seen=None) -> list:
    """Every IntegerLayer an object holds, however deep (attributes, lists, tuples, dicts)."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, (np.ndarray, str, bytes, int, float)):
        return []
    seen.add(id(value))
    if isinstance(value, IntegerLayer):
        return [value]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else \
        vars(value).values() if hasattr(value, "__dict__") else ()
    return [layer for child in children for layer in _integer_layers(child, seen)]


def test_a_layer_that_could_leave_exact_integers_is_refused():
    weight = np.full((4, 2), float((1 << 16) - 1))
    with pytest.raises(FrozenModelError):
        IntegerLayer(weight, np.zeros(2), np.zeros(2, dtype=np.int64), 0, 0, 2.0**40, 0.0, 1.0)


def test_a_model_with_non_finite_weights_is_refused_with_one_line(tmp_path):
    from click.testing import CliRunner

    from bbzip.cli.main import cli
    from bbzip.models.weights import save_model

    torch.manual_seed(0)
    model = MLPVAE(VAEConfig("logistic", latent=4, hidden=32))
    with torch.no_grad():
        model.decoder[0].weight[0, 0] = float("nan")
    save_model(model, tmp_path / "nan.safetensors")
    np.save(tmp_path / "x.npy", np.zeros((3, 28, 28), dtype=np.uint8))
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.bb"),
                                      "--model", str(tmp_path / "nan.safetensors")])
    assert result.exit_code == 1 and "non-finite" in result.output and not (tmp_path / "x.bb").exists()


def test_a_model_with_weights_too_large_to_freeze_is_refused_with_one_line(tmp_path):
    """A diverged layer (weights of 1e30): 0.1 looked for a scale for ever."""
    from click.testing import CliRunner

    from bbzip.cli.main import cli
    from bbzip.models.weights import save_model

    torch.manual_seed(0)
    model = MLPVAE(VAEConfig("logistic", latent=4, hidden=32))
    with torch.no_grad():
        model.decoder[2].weight.fill_(1e30)
    save_model(model, tmp_path / "diverged.safetensors")
    np.save(tmp_path / "x.npy", np.zeros((3, 28, 28), dtype=np.uint8))
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.bb"),
                                      "--model", str(tmp_path / "diverged.safetensors")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "too large" in result.output and not (tmp_path / "x.bb").exists()


def _trained_tiny(likelihood, images):
    from bbzip.models.train import train_vae

    torch.manual_seed(0)
    model = MLPVAE(VAEConfig(likelihood, latent=4, hidden=32))
    train_vae(model, images, epochs=2, batch_size=50, lr=3e-3)
    return model


@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic"])
def test_frozen_network_follows_the_float_network(grey_test_images, likelihood):
    images = grey_test_images[:200] if likelihood == "logistic" else (grey_test_images[:200] >= 128).astype(np.uint8)
    model = _trained_tiny(likelihood, images)
    frozen = freeze(model)
    symbols = images.reshape(len(images), -1).astype(np.int64)
    mean, raw = frozen.encode_images(symbols)
    with torch.no_grad():
        float_mean, float_raw = model.posterior_raw(torch.from_numpy(images))
        float_params = model.likelihood_params(float_mean)
    np.testing.assert_allclose(mean / 2**16, float_mean.numpy(), atol=2e-3)
    np.testing.assert_allclose(raw / 2**16, float_raw.numpy(), atol=2e-3)
    params = frozen.decode_latents(mean)[-1] / 2**12
    if likelihood == "bernoulli":
        np.testing.assert_allclose(params, float_params["logits"].numpy(), atol=0.02)
    else:
        np.testing.assert_allclose(params[:, :784], float_params["mean"].numpy(), atol=0.5)
        np.testing.assert_allclose(params[:, 784:], float_params["log_scale"].numpy(), atol=0.02)


def test_frozen_file_round_trip(tmp_path, grey_test_images):
    frozen = freeze(_trained_tiny("logistic", grey_test_images[:100]))
    sha = save_frozen(frozen, tmp_path / "m.safetensors")
    loaded = load_frozen(tmp_path / "m.safetensors", sha)
    for a, b in zip(frozen.encoder + frozen.decoder, loaded.encoder + loaded.decoder):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        assert np.array_equal(a.weight_bits, b.weight_bits)


def test_k_steps_shrink_archives(grey_test_images):
    images = (grey_test_images[:300] >= 128).astype(np.uint8)
    sizes = [len(api.compress(images, model="mlp-binary-mnist-rha", k_steps=k)) for k in (0, 8)]
    assert sizes[1] < 0.99 * sizes[0]  # measured: 0.1528 -> 0.1469 bpd on 1000 images at K=10


def test_k_step_result_of_an_image_does_not_depend_on_its_batch(grey_test_images):
    """No float reduction runs across images, and noise is indexed by the image's place in the
    stream: coding 6 images as one batch or as 2 + 4 gives the same posteriors. (Checked to
    fail: with the noise indexed from each batch's start instead, the posteriors differed.)"""
    coder = Coder(freeze(_trained_tiny("logistic", grey_test_images[:100])), "tiny", "0" * 64)
    symbols = grey_test_images[:6].reshape(6, -1).astype(np.int64)
    whole = coder.model.posterior(symbols, 4, 5e-3, 9, first_index=10)
    parts = [coder.model.posterior(symbols[:2], 4, 5e-3, 9, first_index=10),
             coder.model.posterior(symbols[2:], 4, 5e-3, 9, first_index=12)]
    for i in range(2):
        np.testing.assert_array_equal(whole[i], np.concatenate([p[i] for p in parts]))
    assert default_settings(coder, 6, k_steps=4).k_steps == 4


def test_optimiser_moves_every_image_on_its_own(grey_test_images):
    coder = freeze(_trained_tiny("logistic", grey_test_images[:100]))
    symbols = grey_test_images[:4].reshape(4, -1).astype(np.int64)
    mean, raw = coder.encode_images(symbols)
    moved = optimise_posterior(coder, symbols, mean, raw, 3, 5e-3, 0, np.arange(4))
    assert not np.array_equal(moved[0], mean) and np.all(np.isfinite(moved[0]))
