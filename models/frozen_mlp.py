"""The paper's MLP VAE, frozen for coding: integer layers, integer tables, exact K-step inference.

Freezing (`FrozenMLPVAE.freeze`) quantises a trained `MLPVAE` once; the frozen file is what
archives name by sha256. Every number that reaches a frequency table is computed here by the
exact operations of integer_mlp.py and the integer tables of bbans.lookup, so compressor and
decompressor agree bit for bit on every machine (numerics version 1).

Fixed point: latents (posterior mean, raw std, z) in 2^-16 units; likelihood parameters
(Bernoulli logits, logistic mean and log-scale, in level units) in 2^-12 units.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from bbzip import bbans
from bbzip.bbans.distributions import PARAM_BITS
from bbzip.bbans.tables import G_BITS
from bbzip.bbans.lookup import (
    EXP_BITS,
    QUANTILE_BITS,
    bucket_centres,
    exp_table,
    interpolate,
    sigmoid_table,
    softplus_tail_table,
    splitmix64,
    standard_normal_noise,
)

from .integer_mlp import (
    ACTIVATION_BITS,
    ACTIVATION_MAX,
    GRADIENT_BITS,
    GRADIENT_MAX,
    FrozenModelError,
    IntegerLayer,
    quantise_layer,
    relu_passes,
)
from . import threads
from .interface import FrozenModel
from .vae_config import LIKELIHOOD_PRECISION, LOG_SCALE_MAX, LOG_SCALE_MIN, VAEConfig

LATENT_LIMIT = 64 << QUANTILE_BITS  # posterior means and raw stds clipped to [-64, 64]
Z_LIMIT = 16 << QUANTILE_BITS  # decoder inputs clipped to [-16, 16]
STD_FLOOR = 7  # the posterior std's + 1e-4, in 2^-16 units
LOGIT_LIMIT = 64 << PARAM_BITS
MEAN_RANGE = (-1024 << PARAM_BITS, 1280 << PARAM_BITS)
# The K-step optimiser (paper Algorithm 2): Adam with torch's defaults.
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
MAX_K_STEPS = 1 << 16  # noise counters: (image, step, latent) packed into 64 bits
_SAMPLE_SEED = 0x5EED_C0DE  # the posterior quantiles codelength_bits samples at


def _fixed(values: np.ndarray, bits: int) -> np.ndarray:
    """float64 -> float64 integers in 2^-bits units, rounded half up (IEEE, the same everywhere)."""
    return np.floor(values * float(1 << bits) + 0.5)


def softplus_std(raw: np.ndarray) -> np.ndarray:
    """The posterior std softplus(raw) + 1e-4, int64 -> int64, both in 2^-16 units."""
    raw = np.asarray(raw, dtype=np.int64)
    tail = interpolate(softplus_tail_table(), np.abs(raw), QUANTILE_BITS) >> (32 - QUANTILE_BITS)
    return np.maximum(raw, 0) + tail + STD_FLOOR


class FrozenMLPVAE(FrozenModel):
    """The integer form of models.vae.MLPVAE (architecture "mlp-vae")."""

    architecture = "mlp-vae"
    config_class = VAEConfig

    def __init__(self, config: VAEConfig, encoder: list[IntegerLayer], decoder: list[IntegerLayer]):
        self.config = config
        self.encoder = encoder
        self.decoder = decoder

    # -- freezing and the file form ---------------------------------------------------------
    @classmethod
    def freeze(cls, model) -> "FrozenMLPVAE":
        """Quantise each Linear layer of a trained model with its place in `_layout` (networks
        of Linear, ReLU, Linear, ReLU, Linear, as the MLP VAE's and the local model's)."""
        config = model.config
        layers = {}
        for name, (_, _, in_bits, in_max, out_bits, low, high) in cls._layout(config).items():
            linear = model.get_submodule(cls._torch_name(name))
            weight = linear.weight.detach().double().numpy().T.copy()
            bias = np.zeros(weight.shape[1]) if linear.bias is None else linear.bias.detach().double().numpy().copy()
            weight_factor, bias_factor = cls._scale_factors(config, name, *weight.shape)
            layers[name] = quantise_layer(weight * weight_factor, bias * bias_factor, in_bits, in_max, out_bits, low, high)
        return cls._assembled(config, layers)

    def float_state(self) -> dict[str, np.ndarray]:
        """The trained model's state dict (float64 numpy arrays, torch's names and shapes) that
        these integers stand for: `freeze` of it gives back these integers (tests/test_shipped.py
        checks it for every shipped model), so shipped models need no float file of their own."""
        state = {}
        for name, layer in self.layer_specs():
            weight_factor, bias_factor = self._scale_factors(self.config, name, *layer.weight.shape)
            weight = np.ldexp(layer.weight, -layer.weight_bits) / weight_factor
            torch_name = self._torch_name(name)
            state[f"{torch_name}.weight"] = np.ascontiguousarray(weight.T)
            if name not in self._without_bias:
                state[f"{torch_name}.bias"] = np.ldexp(layer.bias, -(layer.weight_bits + layer.in_bits)) / bias_factor
        return state

    _without_bias: tuple[str, ...] = ()  # layers whose torch form has no bias (frozen with bias 0)

    @staticmethod
    def _torch_name(name: str) -> str:
        """The torch module of a frozen layer: "decoder.1" is the second Linear of the decoder's
        Sequential (Linear, ReLU, Linear, ReLU, Linear), "decoder.2"."""
        network, index = name.split(".")
        return f"{network}.{2 * int(index)}"

    @staticmethod
    def _scale_factors(config, name: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        """What a layer's float weights (n_in, n_out) and biases are multiplied by when frozen:
        the float model's fixed input and output scales, folded into the layer."""
        weight, bias = np.ones((n_in, n_out)), np.ones(n_out)
        if config.likelihood == "logistic" and name == "encoder.0":
            weight *= 1.0 / 255.0  # the encoder reads x / 255: fold it into the weights
        if config.likelihood == "logistic" and name == "decoder.2":
            weight[:, : config.pixels] *= 255.0  # the decoder's mean is 255 h: fold the 255 in
            bias[: config.pixels] *= 255.0
        return weight, bias

    @classmethod
    def _assembled(cls, config: VAEConfig, layers: dict) -> "FrozenMLPVAE":
        return cls(config, [layers[f"encoder.{i}"] for i in range(3)], [layers[f"decoder.{i}"] for i in range(3)])

    @staticmethod
    def _output_bounds(config: VAEConfig):
        if config.likelihood == "bernoulli":
            return -float(LOGIT_LIMIT), float(LOGIT_LIMIT)
        n = config.pixels
        low = np.concatenate([np.full(n, float(MEAN_RANGE[0])), np.full(n, LOG_SCALE_MIN * (1 << PARAM_BITS))])
        high = np.concatenate([np.full(n, float(MEAN_RANGE[1])), np.full(n, LOG_SCALE_MAX * (1 << PARAM_BITS))])
        return low, high

    def layer_specs(self):
        """(name, layer) for every layer, in file order."""
        return [(f"encoder.{i}", layer) for i, layer in enumerate(self.encoder)] + \
               [(f"decoder.{i}", layer) for i, layer in enumerate(self.decoder)]

    def to_tensors(self) -> tuple[dict[str, np.ndarray], dict]:
        """Every layer's integers (files store each tensor in the narrowest type that holds it)."""
        tensors = {}
        for name, layer in self.layer_specs():
            tensors[f"{name}.weight"] = np.ascontiguousarray(layer.weight.T, dtype=np.int32)  # (out, in), as torch
            tensors[f"{name}.bias"] = layer.bias.astype(np.int64)
            tensors[f"{name}.weight_bits"] = layer.weight_bits.astype(np.int64)
        return tensors, {"config": self.config.to_dict()}

    @classmethod
    def from_tensors(cls, config: VAEConfig, tensors: dict[str, np.ndarray]) -> "FrozenMLPVAE":
        template = cls._layout(config)
        layers = {}
        for name, (n_in, n_out, in_bits, in_max, out_bits, low, high) in template.items():
            weight, bias, bits = (tensors.get(f"{name}.{part}") for part in ("weight", "bias", "weight_bits"))
            if weight is None or bias is None or bits is None or weight.shape != (n_out, n_in) \
                    or bias.shape != (n_out,) or bits.shape != (n_out,):
                raise ValueError(f"{name}: tensors missing or of the wrong shape for {config}")
            if not all(np.issubdtype(t.dtype, np.integer) for t in (weight, bias, bits)):
                raise ValueError(f"{name}: integer tensors expected")
            try:
                layers[name] = IntegerLayer(weight.T.astype(np.float64), bias.astype(np.float64), bits,
                                            in_bits, out_bits, in_max, low, high)
            except FrozenModelError as error:
                raise ValueError(f"{name}: {error}") from None
        return cls._assembled(config, layers)

    @classmethod
    def _layout(cls, config: VAEConfig) -> dict:
        """name -> (in, out, in_bits, in_max, out_bits, low, high) of every layer."""
        hidden, latent, pixels = config.hidden, config.latent, config.pixels
        n_out = pixels if config.likelihood == "bernoulli" else 2 * pixels
        input_max = 1.0 if config.likelihood == "bernoulli" else 255.0
        relu = (0.0, ACTIVATION_MAX)
        return {
            "encoder.0": (pixels, hidden, 0, input_max, ACTIVATION_BITS, *relu),
            "encoder.1": (hidden, hidden, ACTIVATION_BITS, ACTIVATION_MAX, ACTIVATION_BITS, *relu),
            "encoder.2": (hidden, 2 * latent, ACTIVATION_BITS, ACTIVATION_MAX, QUANTILE_BITS, -LATENT_LIMIT, LATENT_LIMIT),
            "decoder.0": (latent, hidden, QUANTILE_BITS, Z_LIMIT, ACTIVATION_BITS, *relu),
            "decoder.1": (hidden, hidden, ACTIVATION_BITS, ACTIVATION_MAX, ACTIVATION_BITS, *relu),
            "decoder.2": (hidden, n_out, ACTIVATION_BITS, ACTIVATION_MAX, PARAM_BITS, *cls._output_bounds(config)),
        }

    # -- the coding path --------------------------------------------------------------------
    def encode_images(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and raw std (float64 integers, 2^-16 units) of symbols (B, pixels)."""
        h = symbols.astype(np.float64)
        for layer in self.encoder:
            h = layer.forward(h)
        latent = self.config.latent
        return h[:, :latent], h[:, latent:]

    def decode_latents(self, z: np.ndarray, last_layer=None) -> list[np.ndarray]:
        """Every layer's output for z (float64 integers, 2^-16 units); the last holds the
        likelihood parameters in 2^-12 units. `last_layer`: some of the last layer's columns
        (IntegerLayer.forward_columns) in its place."""
        outputs = [np.clip(z.astype(np.float64), -Z_LIMIT, Z_LIMIT)]
        for layer in self.decoder[:-1]:
            outputs.append(layer.forward(outputs[-1]))
        outputs.append((last_layer or self.decoder[-1]).forward(outputs[-1]))
        return outputs[1:]

    def posterior(self, symbols: np.ndarray, k_steps: int, lr: float, seed: int, first_index: int):
        """(mean, std) as int64 in 2^-16 units, after K exact steps of paper Algorithm 2, of the
        images first_index, first_index + 1, ... of the stream (their K-step noise's index)."""
        return self.posterior_at(symbols, k_steps, lr, seed, first_index + np.arange(len(symbols), dtype=np.uint64))

    def posterior_at(self, symbols: np.ndarray, k_steps: int, lr: float, seed: int, places: np.ndarray):
        """posterior, of images at these places of the stream, one an image."""
        mean, raw = self.encode_images(symbols)
        if k_steps:
            mean, raw = _optimise_in_parallel(self, symbols, mean, raw, k_steps, lr, seed, places)
        raw = raw.astype(np.int64)
        return mean.astype(np.int64), softplus_std(raw)

    def likelihood(self, z_fixed: np.ndarray, precision: int):
        """The likelihood codec's distribution for z (int64, 2^-16 units)."""
        params = self.decode_latents(z_fixed)[-1].astype(np.int64)
        if self.config.likelihood == "bernoulli":
            return bbans.distributions.Bernoulli(logits=params, precision=precision)
        n = self.config.pixels
        return bbans.distributions.DiscretisedLogistic(params[:, :n], params[:, n:], precision)

    # Where an architecture's likelihood differs (frozen_local_ar.py overrides these three):
    def pixel_distribution(self, z_fixed: np.ndarray, symbols: np.ndarray, precision: int):
        """The distribution of every pixel of `symbols` given z (here independent of the symbols)."""
        return self.likelihood(z_fixed, precision)

    def likelihood_codec(self, z_fixed: np.ndarray, precision: int, kept: dict | None = None) -> bbans.Codec:
        """`kept` (batch_codec's): unused here, the check runs the decoder again (the local
        model's codec takes the intervals push computed)."""
        return bbans.from_distribution(self.likelihood(z_fixed, precision))

    def gradient_pixels(self, symbols: np.ndarray):
        """What likelihood_gradient needs of the images (B, pixels), made once for K steps."""
        return _Pixels(symbols)

    def likelihood_gradient(self, pixels, z):
        return _likelihood_gradient_at_z(self, pixels, z)

    def codelength_bits(self, symbols: np.ndarray, settings) -> np.ndarray:
        """Per image of symbols (B, pixels): the bits coding it at K = 0 takes, estimated from
        one posterior sample, -log2 p(x|z) - log2 p(z) + log2 q(z|x), with the integer tables the
        coder itself uses (with bits back this is the codelength, not a bound on it). The sample
        is the same quantile of each latent's posterior for every image, so an image's estimate
        does not depend on its batch; its frequencies are the same integers on every machine
        (only the final log2 and sum are floats)."""
        z, bits_back = self._codelength_sample(symbols, settings)
        likelihood = self.pixel_distribution(z, symbols, settings.likelihood_precision)
        _, likelihood_freq = likelihood.interval(symbols)
        pixel_bits = settings.likelihood_precision * symbols.shape[1] - np.log2(likelihood_freq).sum(axis=1)
        return pixel_bits + settings.bucket_bits * self.config.latent - bits_back

    def _codelength_sample(self, symbols: np.ndarray, settings) -> tuple[np.ndarray, np.ndarray]:
        """(z (2^-16 units), the bits its posterior pop gives back) of codelength_bits's sample."""
        mean, std = self.posterior(symbols, 0, 0.0, 0, 0)
        posterior = bbans.distributions.BucketedGaussian(mean, std, settings.bucket_bits, settings.posterior_precision)
        quantiles = splitmix64(_SAMPLE_SEED, np.arange(self.config.latent)) >> np.uint64(64 - settings.posterior_precision)
        z, _, posterior_freq = posterior.symbol_at(quantiles.astype(np.int64)[None, :])
        bits_back = settings.posterior_precision * self.config.latent - np.log2(posterior_freq).sum(axis=1)
        return bucket_centres(settings.bucket_bits)[z], bits_back

    keeps_for_check = True  # (FrozenModel's)

    def batch_codec(self, settings, first_index: int, n_images: int, kept: dict | None = None) -> bbans.Codec:
        """`kept`: a dict shared by the push of this batch and a check of the same batch (models/
        stream.py: encode_checked): push leaves there what it computed, the posterior and the
        likelihood's intervals, and the check takes them (recomputing a share at random)
        instead of running the encoder's K steps and the decoder over every image again. The
        posteriors to recompute are left in kept["later"] (a list a whole block's batches may
        share) for finish_check."""
        centres = bucket_centres(settings.bucket_bits)

        def posterior(symbols):
            symbols = symbols.reshape(n_images, -1)
            args = (settings.k_steps, settings.lr, settings.seed)
            if kept is not None and "posterior" in kept:
                mean, std = _kept_posterior(self, kept, symbols, args, first_index)
            else:
                mean, std = self.posterior(symbols, *args, first_index)
                if kept is not None:  # (push: what its posterior and likelihood were computed for)
                    kept["symbols"], kept["posterior"] = symbols.astype(np.uint8), (mean, std)
            return bbans.BucketedGaussian(mean, std, settings.bucket_bits, settings.posterior_precision)

        def likelihood(z_index):
            if kept is None:
                return self.likelihood_codec(centres[z_index], settings.likelihood_precision)
            return self.likelihood_codec(centres[z_index], settings.likelihood_precision, kept)

        prior = bbans.BucketPrior(settings.bucket_bits, (n_images, self.config.latent))
        return bbans.bits_back(prior, likelihood, posterior)

    def finish_check(self, later: list) -> None:
        """Compute again, as one batch, the posteriors that checks left in `later` (_kept_posterior):
        CorruptStream unless each is the one its images were coded with. One batch of a whole
        block's share does the K steps' work in large products (a run of a batch of a few images
        would take nearly the time of the batch), and it is another split of that work than the
        push's, as the decoder's may be."""
        for args in {audit.args for audit in later}:
            audits = [audit for audit in later if audit.args == args]
            symbols = np.concatenate([audit.symbols for audit in audits]).astype(np.int64)
            mean, std = self.posterior_at(symbols, *args, np.concatenate([audit.places for audit in audits]))
            if not (np.array_equal(mean, np.concatenate([audit.mean for audit in audits]))
                    and np.array_equal(std, np.concatenate([audit.std for audit in audits]))):
                raise bbans.CorruptStream("the posterior computed again is not the one the images were coded with")
        later.clear()


# The share of a batch's images whose posterior a check computes again, beside taking the rest
# from the push of the same batch (batch_codec's `kept`).
RECOMPUTED_POSTERIORS = 1 / 8


@dataclass(frozen=True)
class _PosteriorAudit:
    """Images whose posterior a check takes from push, to be computed again (finish_check)."""

    symbols: np.ndarray  # uint8 (n, pixels)
    places: np.ndarray  # their places in the stream
    mean: np.ndarray
    std: np.ndarray
    args: tuple  # (k_steps, lr, seed)


def _kept_posterior(model, kept, symbols, args, first_index: int):
    """The (mean, std) push computed for `symbols`, leaving a random run of RECOMPUTED_POSTERIORS
    of its images in kept["later"] to be computed again (finish_check); computed afresh for
    symbols other than those pushed."""
    mean, std = kept.pop("posterior")
    n = len(symbols)
    if not np.array_equal(kept["symbols"], symbols):
        return model.posterior(symbols, *args, first_index)
    run = max(1, math.ceil(n * RECOMPUTED_POSTERIORS))
    lo = int(np.random.default_rng().integers(0, n - run + 1))
    taken = slice(lo, lo + run)
    kept.setdefault("later", []).append(_PosteriorAudit(
        kept["symbols"][taken], first_index + np.arange(lo, lo + run, dtype=np.uint64), mean[taken], std[taken], args))
    return mean, std


# -- K-step inference (paper Algorithm 2), exact ----------------------------------------------
# Images per chunk: a chunk's per-pixel arrays (a few hundred KB) stay in the core's cache, which
# matters more than the products' size (measured here: grey K=10 on 1000 images 1.22 s in chunks
# of 500, 0.70 s in chunks of 125, 0.79 s in chunks of 64).
_CHUNK = 128
# Fewest images a thread of K-step inference takes: a two-valued block's batches are a few tens to
# a hundred images (its lanes), and each of their steps is still tens of thousands of pixel rows
# of the local model's head, work enough to share.
_THREAD_IMAGES = 16


def _optimise_in_parallel(model, symbols, mean, raw, k_steps, lr, seed, places):
    """optimise_posterior on cache-sized chunks of the batch, in threads (one BLAS thread each).

    Images do not interact in the K steps and their noise is indexed by their place in the
    stream, so the result is the same for any split and any number of workers; the threads only
    let numpy's element-wise work (which releases the GIL) use every core.
    """
    n, workers = len(symbols), threads.budget()
    chunks = max(1, round(n / _CHUNK), min(workers, n // _THREAD_IMAGES))
    if chunks < 2:
        return optimise_posterior(model, symbols, mean, raw, k_steps, lr, seed, places)
    bounds = np.linspace(0, n, chunks + 1).astype(int)
    with threadpool_limits(limits=1, user_api="blas"):
        with ThreadPoolExecutor(min(chunks, workers)) as pool:
            parts = list(pool.map(lambda lo, hi: optimise_posterior(model, symbols[lo:hi], mean[lo:hi], raw[lo:hi], k_steps,
                                                                    lr, seed, places[lo:hi]), bounds[:-1], bounds[1:]))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def optimise_posterior(model: FrozenMLPVAE, symbols, mean, raw, k_steps: int, lr: float, seed: int, places: np.ndarray):
    """K Adam steps on each image's one-sample -ELBO, from the encoder's (mean, raw).

    Exact on every machine: the decoder runs on integers forward and backward (integer_mlp.py);
    the likelihood's gradient, the KL's gradient and Adam use only IEEE + - * / and sqrt on
    single float64 values in a fixed order, with sigmoid and exp read from integer tables; the
    noise is a counter-based integer generator (image index, step, latent) through the integer
    normal quantile table. No reduction runs over floats: images do not interact, so a batch's
    composition does not change any image's result.
    Inputs and outputs are float64 integers in 2^-16 units.
    """
    scale = float(1 << QUANTILE_BITS)
    mean, raw = mean / scale, raw / scale
    moments = [np.zeros_like(mean) for _ in range(4)]  # first and second moments of mean and raw
    beta1, beta2 = ADAM_BETAS
    beta1_power = beta2_power = 1.0
    n, latent = mean.shape
    counters = (np.asarray(places, dtype=np.uint64)[:, None] * np.uint64(MAX_K_STEPS * latent)
                + np.arange(latent, dtype=np.uint64))
    pixels = model.gradient_pixels(symbols)
    for step in range(k_steps):
        eps = standard_normal_noise(seed, counters + np.uint64(step * latent)) / scale
        raw_fixed = _fixed(raw, QUANTILE_BITS).astype(np.int64)
        std = softplus_std(raw_fixed) / scale
        z = _fixed(mean + std * eps, QUANTILE_BITS)
        grad_z = model.likelihood_gradient(pixels, z)
        # KL(N(mean, std) || N(0, 1)): d/dmean = mean, d/dstd = std - 1/std; d std / d raw = sigmoid(raw).
        grad_mean = grad_z + mean
        grad_std = grad_z * eps + (std - 1.0 / std)
        grad_raw = grad_std * (interpolate(sigmoid_table(), raw_fixed, QUANTILE_BITS) * 2.0**-G_BITS)
        beta1_power *= beta1
        beta2_power *= beta2
        mean = _adam(mean, grad_mean, moments[0], moments[1], lr, beta1_power, beta2_power)
        raw = _adam(raw, grad_raw, moments[2], moments[3], lr, beta1_power, beta2_power)
    return (np.clip(_fixed(mean, QUANTILE_BITS), -LATENT_LIMIT, LATENT_LIMIT),
            np.clip(_fixed(raw, QUANTILE_BITS), -LATENT_LIMIT, LATENT_LIMIT))


def _adam(param, grad, first, second, lr, beta1_power, beta2_power):
    """One Adam step (torch's formula, this fixed order); updates the moments in place."""
    beta1, beta2 = ADAM_BETAS
    first *= beta1
    first += (1.0 - beta1) * grad
    second *= beta2
    second += (1.0 - beta2) * (grad * grad)
    denominator = np.sqrt(second) / math.sqrt(1.0 - beta2_power) + ADAM_EPS
    return param - (lr / (1.0 - beta1_power)) * (first / denominator)


def _likelihood_gradient_at_z(model: FrozenMLPVAE, pixels, z):
    """d(-log p(x|z))/dz (float64, real units) by the integer decoder, forward and backward."""
    hidden1, hidden2, params = model.decode_latents(z)
    last = model.decoder[-1]
    grad = _output_gradient(model.config, pixels, params)
    grad = np.clip(_fixed(grad, GRADIENT_BITS), -GRADIENT_MAX, GRADIENT_MAX)
    grad *= (params > last.low) & (params < last.high)  # a clipped output passes no gradient
    for layer, activation in ((model.decoder[2], hidden2), (model.decoder[1], hidden1)):
        grad = layer.backward(grad)
        grad *= relu_passes(activation)  # ReLU and its saturation
    return model.decoder[0].backward(grad) / float(1 << GRADIENT_BITS)


_CODER_FLOOR = float(1 << (G_BITS - LIKELIHOOD_PRECISION))  # 2^-24 in the tables' 2^-G_BITS units


def _floor_weight(prob_fixed):
    """d log(P + 2^-24) / d log P: the coder's floor under every symbol (vae.with_coder_floor)."""
    prob = prob_fixed.astype(np.float64)
    return prob / (prob + _CODER_FLOOR)


class _Pixels:
    """What the likelihood gradient needs of the images, computed once for all K steps."""

    def __init__(self, symbols: np.ndarray):
        self.symbols = symbols.astype(np.int64)
        self.is_one = self.symbols > 0
        self.as_float = self.symbols.astype(np.float64)
        self.upper_edge = (self.symbols << PARAM_BITS) + (1 << (PARAM_BITS - 1))  # x + 0.5, 2^-12 units
        self.first = self.symbols == 0
        self.last = self.symbols == 255


def _output_gradient(config: VAEConfig, pixels: _Pixels, params):
    """d(-log p(x|z)) / d(decoder output), per pixel, float64 in real units."""
    sigmoid = sigmoid_table()
    if config.likelihood == "bernoulli":
        one_prob = interpolate(sigmoid, params.astype(np.int64), PARAM_BITS)
        prob = np.where(pixels.is_one, one_prob, (1 << G_BITS) - one_prob)
        return (one_prob * 2.0**-G_BITS - pixels.as_float) * _floor_weight(prob)
    n = config.pixels
    mean, log_scale = params[:, :n].astype(np.int64), params[:, n:].astype(np.int64)
    inverse_scale = interpolate(exp_table(), -log_scale, PARAM_BITS)  # 2^-EXP_BITS units, as bbans
    argument_bits = PARAM_BITS + EXP_BITS
    upper_arg = (pixels.upper_edge - mean) * inverse_scale  # 2^-argument_bits units
    lower_arg = upper_arg - (inverse_scale << PARAM_BITS)
    # The end bins are open: sigmoid(l) = 0 below level 0 and sigmoid(u) = 1 above 255. With those
    # values the interior formulas below give the end bins' gradients too.
    upper_fixed = interpolate(sigmoid, upper_arg, argument_bits)
    upper_fixed[pixels.last] = 1 << G_BITS
    lower_fixed = interpolate(sigmoid, lower_arg, argument_bits)
    lower_fixed[pixels.first] = 0
    prob_fixed = upper_fixed - lower_fixed
    s_upper, s_lower = upper_fixed * 2.0**-G_BITS, lower_fixed * 2.0**-G_BITS
    upper, lower = upper_arg * 2.0**-argument_bits, lower_arg * 2.0**-argument_bits
    out = np.empty((len(mean), 2 * n))
    grad_mean, grad_log_scale = out[:, :n], out[:, n:]
    np.subtract(1.0 - s_upper, s_lower, out=grad_mean)
    grad_mean *= inverse_scale * 2.0**-EXP_BITS
    # (s'(u) u - s'(l) l) / P is a mean of 1 + t (1 - 2 s(t)) over t in (l, u), so bounded by
    # 1 + max(|u|, |l|): clipping to that bound tames tiny P without changing any true value.
    np.subtract(s_upper * (1.0 - s_upper) * upper, s_lower * (1.0 - s_lower) * lower, out=grad_log_scale)
    grad_log_scale /= np.maximum(prob_fixed, 1) * 2.0**-G_BITS
    bound = np.maximum(np.abs(upper), np.abs(lower))
    bound += 1.0
    np.minimum(grad_log_scale, bound, out=grad_log_scale)
    np.negative(bound, out=bound)
    np.maximum(grad_log_scale, bound, out=grad_log_scale)
    weight = _floor_weight(prob_fixed)
    grad_mean *= weight
    grad_log_scale *= weight
    return out
