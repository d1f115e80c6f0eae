"""Fast checks of the models package on tiny nets and a few hundred images."""
import json

import numpy as np
import pytest
import torch

from bbzip.models.evaluate import iwae_bpd, optimal_inference_bpd, elbo_bpd
from bbzip.models.objectives import negative_elbo
from bbzip.models.train import fit, train_encoder, train_vae
from bbzip.models.vae import MLPVAE, VAEConfig, discretised_logistic_log_prob
from bbzip.models.weights import ModelFileError, load_model, save_model


@pytest.fixture(scope="module")
def binary_images(grey_test_images):
    return (grey_test_images[:300] >= 128).astype(np.uint8)


def tiny(likelihood="bernoulli", seed=0):
    torch.manual_seed(seed)
    return MLPVAE(VAEConfig(likelihood, latent=4, hidden=32))


def test_shapes(grey_test_images):
    for likelihood in ("bernoulli", "logistic"):
        model = tiny(likelihood)
        x = torch.from_numpy(grey_test_images[:5] if likelihood == "logistic" else (grey_test_images[:5] >= 128).astype(np.uint8))
        mean, raw = model.posterior_raw(x)
        assert mean.shape == raw.shape == (5, 4)
        params = model.likelihood_params(mean)
        assert all(v.shape == (5, 784) for v in params.values())
        assert negative_elbo(model, x).shape == (5,)
        assert model.sample_x(mean).shape == (5, 28, 28)


def test_logistic_probabilities_sum_to_one():
    mean = torch.tensor([[-30.0, 0.2, 100.0, 254.0, 400.0]]).repeat(256, 1)
    log_scale = torch.tensor([[-3.0, 0.0, 2.0, 1.0, -1.0]]).repeat(256, 1)
    levels = torch.arange(256).unsqueeze(1).expand(256, 5)
    total = discretised_logistic_log_prob(levels, mean, log_scale).double().exp().sum(0)
    np.testing.assert_allclose(total.numpy(), 1.0, atol=1e-4)


def test_training_lowers_the_loss(binary_images):
    model = tiny()
    history = train_vae(model, binary_images, epochs=4, batch_size=50, lr=3e-3)
    assert history[-1] < history[0]


def test_same_seed_same_weights(binary_images):
    weights = []
    for _ in range(2):
        model = tiny()
        train_vae(model, binary_images[:100], epochs=1, batch_size=50, seed=3)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize("objective", ["reverse-half-asleep", "sleep", "denoise"])
def test_train_encoder_leaves_decoder_bit_identical(binary_images, objective):
    model = tiny()
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    encoder_before = torch.cat([p.flatten().clone() for p in model.encoder.parameters()])
    train_encoder(model, binary_images[:100], objective, alpha=0.5, sigma=0.2, epochs=1, batch_size=50)
    for key, value in model.decoder.state_dict().items():
        assert torch.equal(value, decoder_before[key])
    assert not torch.equal(torch.cat([p.flatten() for p in model.encoder.parameters()]), encoder_before)


def test_alpha_zero_is_ordinary_encoder_training(binary_images):
    a, b = tiny(), tiny()
    train_encoder(a, binary_images[:100], "reverse-half-asleep", alpha=0.0, epochs=1, batch_size=50, seed=7)
    for p in b.decoder.parameters():
        p.requires_grad_(False)
    fit(b, binary_images[:100], lambda x, g: negative_elbo(b, x, g).mean(), b.encoder.parameters(), epochs=1, batch_size=50, seed=7)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_safetensors_round_trip_and_tamper_check(tmp_path):
    model = tiny("logistic")
    path = tmp_path / "m.safetensors"
    sha = save_model(model, path, {"command": "bbzip train mnist"})
    loaded, metadata = load_model(path, sha)
    assert metadata["command"] == "bbzip train mnist" and loaded.config == model.config
    for a, b in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(a, b)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(path, sha)
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError):
        load_model(path)


@pytest.mark.parametrize("likelihood, readable", [("bernoulli", True), ("logistic", False)])
def test_version_1_files_load_only_where_their_meaning_is_unchanged(tmp_path, likelihood, readable):
    """Format 1 had another logistic parameterisation: its Bernoulli models still load, its
    logistic models are refused with a clear message instead of coding with the wrong meaning."""
    from safetensors.torch import save_file

    model = tiny(likelihood)
    path = tmp_path / "old.safetensors"
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "bbzip-mlp-vae-1", "config": json.dumps(model.config.to_dict())})
    if readable:
        assert load_model(path)[0].config == model.config
    else:
        with pytest.raises(ModelFileError, match="older bbzip"):
            load_model(path)


def test_evaluation_functions_agree_in_order(binary_images):
    model = tiny()
    train_vae(model, binary_images, epochs=2, batch_size=50, lr=3e-3)
    elbo = elbo_bpd(model, binary_images[:100], samples=5)
    iwae = iwae_bpd(model, binary_images[:100], k=50)
    oracle = optimal_inference_bpd(model, binary_images[:100], epochs=5, lr=1e-3, batch_size=50)
    assert iwae <= elbo + 1e-6  # the IWAE bound is tighter than the ELBO
    assert oracle < elbo  # fitting q on the test images themselves closes part of the gap


@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic"])
def test_model_likelihood_is_what_the_coder_spends(likelihood):
    """log p(x|z) of the model equals the coder's own interval cost, pixel by pixel, even where
    the model is very sure of another value (the coder's 2^-24 floor is part of the model).
    The coder reads the parameters in fixed point (2^-12) through its integer tables."""
    import math

    from bbzip import bbans
    from bbzip.models.vae import LIKELIHOOD_PRECISION

    rng = np.random.default_rng(0)
    model = tiny(likelihood)
    z = torch.from_numpy(rng.normal(0, 3, size=(40, model.config.latent)).astype(np.float32))
    with torch.no_grad():
        params = model.likelihood_params(z)
        if likelihood == "bernoulli":
            params["logits"] = params["logits"] * 4  # very sure pixels, some past the floor
            x = rng.integers(0, 2, size=(40, 784))
        else:
            params["mean"] = params["mean"] * 30
            x = rng.integers(0, 256, size=(40, 784))
        fixed = {k: bbans.to_fixed(v.double().numpy(), 12) for k, v in params.items()}
        on_grid = {k: torch.from_numpy(v / 4096.0).float() for k, v in fixed.items()}
        model_bits = -model.log_likelihood(torch.from_numpy(x.astype(np.uint8)), on_grid).numpy() / math.log(2)
    if likelihood == "bernoulli":
        coder = bbans.distributions.Bernoulli(logits=fixed["logits"], precision=LIKELIHOOD_PRECISION)
    else:
        coder = bbans.distributions.DiscretisedLogistic(fixed["mean"], fixed["log_scale"], LIKELIHOOD_PRECISION)
    _, freq = coder.interval(x)
    coder_bits = -np.log2(freq.astype(np.float64) / 2**LIKELIHOOD_PRECISION).sum(-1)
    assert model_bits.max() < 24 * 784 + 1
    np.testing.assert_allclose(model_bits, coder_bits, rtol=2e-3)


@pytest.mark.parametrize("alpha, samples", [(0.5, 8), (0.75, 24), (0.9, 72)])
def test_aggregate_sampling_gives_as_many_model_samples_as_alpha_asks(binary_images, alpha, samples, monkeypatch):
    """alpha is the share of model samples in each batch, also when they are drawn from the
    aggregate posterior: 8 data images and alpha 0.75 need 24 samples, not the 8 the data has
    (before: from_data[:n] gave at most one per data image)."""
    from bbzip.models import objectives

    model, seen = tiny(), []
    real = objectives.negative_elbo
    monkeypatch.setattr(objectives, "negative_elbo", lambda m, x, g=None: seen.append(len(x)) or real(m, x, g))
    x = torch.from_numpy(binary_images[:8])
    objectives.reverse_half_asleep(model, x, alpha, torch.Generator().manual_seed(0), samples_from="aggregate")
    assert seen == [8 + samples]
