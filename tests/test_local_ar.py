"""The local autoregressive VAE: causal in torch, exact on the integer path, a VAE for training."""
import numpy as np
import pytest
import torch

from bbzip.models import api
from bbzip.models.architectures import freeze, load_frozen, save_frozen
from bbzip.models.coder_choice import Coder, default_settings
from bbzip.models.evaluate import elbo_bpd
from bbzip.models.local_ar import LocalARConfig, LocalARVAE, context_offsets
from bbzip.models.train import train_encoder, train_vae
from bbzip.models.weights import load_model, save_model


def _images(grey_test_images, likelihood, n):
    images = grey_test_images[:n]
    return images if likelihood == "logistic" else (images >= 128).astype(np.uint8)


def _tiny(likelihood, images=None, epochs=2):
    torch.manual_seed(0)
    model = LocalARVAE(LocalARConfig(likelihood, latent=4, hidden=32, features=2, head=8))
    if images is not None:
        train_vae(model, images, epochs=epochs, batch_size=50, lr=3e-3)
    return model.eval()


@pytest.fixture(scope="module", params=["bernoulli", "logistic"])
def trained(request, grey_test_images):
    images = _images(grey_test_images, request.param, 200)
    return request.param, images, _tiny(request.param, images)


def test_the_window_is_causal_and_has_2r_r_plus_1_pixels():
    for radius in (1, 2, 3):
        offsets = context_offsets(radius)
        assert len(offsets) == 2 * radius * (radius + 1) == len(set(offsets))
        assert all(di < 0 or (di == 0 and dj < 0) for di, dj in offsets)  # above, or left in the same row


def test_a_pixel_changes_only_the_parameters_of_pixels_after_it(grey_test_images):
    """Change pixel 400 of an image: the parameters of pixels 0..400 stay, those of some pixels
    after it (within its window) move."""
    model = _tiny("logistic")
    x = torch.from_numpy(grey_test_images[:1].copy())
    features = model.likelihood_params(torch.randn(1, 4))["features"]
    before = model.pixel_params(x, features)["mean"]
    x.view(1, -1)[0, 400] = 255 - x.view(1, -1)[0, 400]
    after = model.pixel_params(x, features)["mean"]
    assert torch.equal(before[0, :401], after[0, :401])
    assert not torch.equal(before[0, 401:], after[0, 401:])


def test_sampling_pixel_by_pixel_follows_the_whole_image_parameters():
    """sample_x draws each pixel from the parameters that log_likelihood gives it: with the
    log-scale at its floor and the mean far from the edges, a sample sits at the mean."""
    model = _tiny("logistic")
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.copy_(torch.tensor([0.5, -50.0]))  # mean 127.5, log-scale clamped to -2
    z = torch.randn(3, 4)
    sample = model.sample_x(z, torch.Generator().manual_seed(0))
    assert sample.shape == (3, 28, 28) and np.abs(sample.numpy().astype(int) - 127.5).max() < 4


def test_training_lowers_the_loss_and_the_file_round_trips(tmp_path, grey_test_images):
    images = grey_test_images[:200]
    model = _tiny("logistic")
    start = elbo_bpd(model, images, samples=1)
    train_vae(model, images, epochs=3, batch_size=50, lr=3e-3)
    assert elbo_bpd(model, images, samples=1) < start - 0.5
    save_model(model, tmp_path / "ar.safetensors", {"command": "tests"})
    loaded, metadata = load_model(tmp_path / "ar.safetensors")
    assert isinstance(loaded, LocalARVAE) and loaded.config == model.config and metadata["architecture"] == "local-ar-vae"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_reverse_half_asleep_trains_only_the_encoder(grey_test_images):
    """Its model samples come pixel by pixel from the head; the decoder and the head stay
    bit-identical."""
    model = _tiny("bernoulli")
    images = _images(grey_test_images, "bernoulli", 100)
    frozen_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    encoder_before = torch.cat([p.flatten().clone() for p in model.encoder.parameters()])
    train_encoder(model, images, "reverse-half-asleep", alpha=0.5, epochs=1, batch_size=50)
    for key, value in model.state_dict().items():
        if key in frozen_before:
            assert torch.equal(value, frozen_before[key]), key
    assert not torch.equal(torch.cat([p.flatten() for p in model.encoder.parameters()]), encoder_before)


def test_frozen_parameters_follow_the_float_network(trained):
    likelihood, images, model = trained
    frozen = freeze(model)
    symbols = images.reshape(len(images), -1).astype(np.int64)
    mean, _ = frozen.encode_images(symbols)
    params = frozen._parameters(symbols, frozen.features(mean)) / 2**12
    with torch.no_grad():
        features = model.likelihood_params(torch.from_numpy(mean / 2**16).float())["features"]
        float_params = model.pixel_params(torch.from_numpy(images), features)
    if likelihood == "bernoulli":
        np.testing.assert_allclose(params[..., 0], float_params["logits"].numpy(), atol=0.02)
    else:
        np.testing.assert_allclose(params[..., 0], float_params["mean"].numpy(), atol=0.5)
        np.testing.assert_allclose(params[..., 1], float_params["log_scale"].numpy(), atol=0.02)


@pytest.mark.parametrize("k_steps", [0, 3])
def test_round_trip_on_the_integer_path(trained, k_steps):
    """Encoding pushes every pixel at once, decoding pops one pixel position at a time; the
    codelength estimate the fallback uses agrees with the real bytes; K steps shrink them."""
    likelihood, images, model = trained
    coder = Coder(freeze(model), "tiny-ar", "0" * 64)
    settings = default_settings(coder, len(images), k_steps=k_steps)
    record = bytearray()
    api.write_record(lambda b: record.extend(b) or len(b), coder, images, settings, block_images=128, cores=1)
    np.testing.assert_array_equal(api.decompress(bytes(record), model=coder, cores=2), images)
    if k_steps == 0:
        symbols, _ = coder.model.to_symbols(images)
        estimate = coder.model.codelength_bits(symbols, settings).sum() / 8
        assert abs(estimate - len(record)) < 0.03 * len(record) + 200


def test_the_integer_gradient_of_k_step_inference_is_torch_s(trained):
    """K-step inference's d(-log p(x|z))/dz, run on integers through the head and the decoder,
    against torch's autograd of the float model (measured: correlation 0.99998)."""
    likelihood, images, model = trained
    frozen = freeze(model)
    symbols = images[:50].reshape(50, -1).astype(np.int64)
    mean, _ = frozen.encode_images(symbols)
    gradient = frozen.likelihood_gradient(frozen.gradient_pixels(symbols), mean)
    z = torch.from_numpy(mean / 2**16).float().requires_grad_(True)
    (-model.log_likelihood(torch.from_numpy(images[:50]), model.likelihood_params(z)).sum()).backward()
    expected = z.grad.numpy()
    assert np.abs(gradient - expected).max() < 0.02 * np.abs(expected).max()
    assert np.corrcoef(gradient.ravel(), expected.ravel())[0, 1] > 0.999


def test_frozen_file_round_trip(tmp_path, trained):
    _, _, model = trained
    frozen = freeze(model)
    sha = save_frozen(frozen, tmp_path / "ar-int.safetensors")
    loaded = load_frozen(tmp_path / "ar-int.safetensors", sha)
    assert loaded.architecture == "local-ar-vae" and loaded.config == frozen.config
    for (name, a), (_, b) in zip(frozen.layer_specs(), loaded.layer_specs(), strict=True):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias), name


def _pushed(frozen, symbols, precision=16):
    """A message holding `symbols` under the likelihood of z = the posterior mean."""
    from bbzip import bbans

    mean, _ = frozen.encode_images(symbols)
    codec = frozen.likelihood_codec(mean, precision)
    message = bbans.Message.empty((len(symbols),), seed=3)
    return codec, codec.push(message, symbols)


def test_the_check_gives_what_pop_gives_and_refuses_other_pixels(trained):
    """The likelihood's check (every pixel's parameters at once, each interval popped unsearched)
    leaves the message pop leaves; a message that holds another pixel is a CorruptStream."""
    from bbzip import bbans

    likelihood, images, model = trained
    frozen = freeze(model)
    symbols = images[:20].reshape(20, -1).astype(np.int64)
    codec, pushed = _pushed(frozen, symbols)
    (popped, found), (checked, given) = codec.pop(pushed), codec.check(pushed, symbols)
    assert np.array_equal(found, symbols) and np.array_equal(given, symbols)
    assert popped.to_bytes() == checked.to_bytes()
    other = symbols.copy()
    other[4, 300] = 1 - other[4, 300] if likelihood == "bernoulli" else (other[4, 300] + 90) % 256
    with pytest.raises(bbans.CorruptStream):
        codec.check(pushed, other)


def _misreading_batch_pass(trained, monkeypatch):
    """(a frozen model whose pass over every pixel at once reads a pixel's first neighbour wrong,
    where pop's one position at a time reads it right; 20 images' symbols)."""
    _, images, model = trained
    frozen = freeze(model)
    right = frozen.head_inputs

    def misread(symbols, features, pixels=None):
        inputs = right(symbols, features, pixels)
        inputs[:, 0] += 1 << 16
        return inputs

    monkeypatch.setattr(frozen, "head_inputs", misread)
    return frozen, images[:20].reshape(20, -1).astype(np.int64)


def test_the_check_recomputes_a_share_of_positions_the_way_pop_does(trained, monkeypatch):
    """Where encoding and the check's pass over every pixel at once agree with each other but not
    with pop's one position at a time (here: both read a pixel's first neighbour wrong), the
    check passes without its recomputed positions and refuses with them."""
    from bbzip import bbans
    from bbzip.models import frozen_local_ar

    frozen, symbols = _misreading_batch_pass(trained, monkeypatch)
    codec, pushed = _pushed(frozen, symbols)
    _, popped = codec.pop(pushed)
    assert not np.array_equal(popped, symbols)  # what decompress would give
    monkeypatch.setattr(frozen_local_ar, "RECOMPUTED_STEPS", 0)
    codec.check(pushed, symbols)
    monkeypatch.setattr(frozen_local_ar, "RECOMPUTED_STEPS", 1)
    with pytest.raises(bbans.CorruptStream):
        codec.check(pushed, symbols)


def _kept_batch(frozen, symbols, k_steps=0):
    """(the batch codec and a message holding `symbols`, pushed by a codec that left what it
    computed in `kept`, and that kept dict), as stream.encode_checked hands them to a check."""
    from bbzip import bbans
    from bbzip.models.coding_settings import CodingSettings

    settings, kept = CodingSettings(k_steps=k_steps, bucket_bits=8, likelihood_precision=16), {}
    codec = frozen.batch_codec(settings, 0, len(symbols), kept=kept)
    message = bbans.Message.empty((len(symbols),), seed=3)
    return codec, codec.push(message, symbols), kept


def test_a_check_takes_the_intervals_push_kept_without_running_the_head_on_every_pixel(trained, monkeypatch):
    """The check of a batch whose push kept its intervals pops those: the head's pass over every
    pixel (most of a check's time) is not run again, and it gives what pop gives."""
    _, images, model = trained
    frozen = freeze(model)
    symbols = images[:20].reshape(20, -1).astype(np.int64)
    codec, pushed, kept = _kept_batch(frozen, symbols)

    def not_again(*args):
        raise AssertionError("the head ran over every pixel again")

    with monkeypatch.context() as patched:
        patched.setattr(frozen, "_parameters", not_again)
        checked, given = codec.check(pushed, symbols)
    assert "likelihood" not in kept and "posterior" not in kept  # taken, not held on
    popped, found = codec.pop(pushed)
    assert np.array_equal(given, symbols) and np.array_equal(found, symbols)
    assert checked.to_bytes() == popped.to_bytes()


def test_a_check_of_kept_intervals_still_recomputes_a_share_of_positions_the_way_pop_does(trained, monkeypatch):
    """Kept intervals come from push's pass over every pixel at once; where that pass and pop's one
    position at a time disagree (here: the pass reads a pixel's first neighbour wrong), the
    check refuses them by the positions it computes again as pop does."""
    from bbzip import bbans
    from bbzip.models import frozen_local_ar

    frozen, symbols = _misreading_batch_pass(trained, monkeypatch)
    monkeypatch.setattr(frozen_local_ar, "RECOMPUTED_STEPS", 0)
    codec, pushed, _ = _kept_batch(frozen, symbols)
    codec.check(pushed, symbols)
    monkeypatch.setattr(frozen_local_ar, "RECOMPUTED_STEPS", 1)
    codec, pushed, _ = _kept_batch(frozen, symbols)
    with pytest.raises(bbans.CorruptStream):
        codec.check(pushed, symbols)


def test_a_check_of_a_kept_posterior_computes_a_share_of_it_again(trained, monkeypatch):
    """The check takes push's posterior (K steps: most of its time) but leaves a run of its
    images to be computed again, as a batch of their own, once the block is checked
    (finish_check): a posterior that depended on its batch (which the decoder, splitting its
    work its own way, would not reproduce) is refused."""
    from bbzip import bbans

    _, images, model = trained
    frozen = freeze(model)
    symbols = images[:24].reshape(24, -1).astype(np.int64)
    codec, pushed, kept = _kept_batch(frozen, symbols, k_steps=2)
    assert np.array_equal(codec.check(pushed, symbols)[1], symbols)
    assert [len(audit.symbols) for audit in kept["later"]] == [3]
    frozen.finish_check(kept["later"])
    assert kept["later"] == []
    posterior_at = frozen.posterior_at

    def by_batch(symbols, *args):
        mean, std = posterior_at(symbols, *args)
        return mean + len(symbols), std

    monkeypatch.setattr(frozen, "posterior_at", by_batch)
    codec, pushed, kept = _kept_batch(frozen, symbols, k_steps=2)
    codec.check(pushed, symbols)
    with pytest.raises(bbans.CorruptStream):
        frozen.finish_check(kept["later"])


def test_a_block_check_computes_its_batches_shares_again_as_one_batch(trained, monkeypatch):
    """encode_checked leaves each batch's share to the end of the block and computes them
    together (one batch of large products instead of a run of a few images a batch)."""
    from bbzip.models import stream
    from bbzip.models.coding_settings import CodingSettings

    _, images, model = trained
    frozen = freeze(model)
    symbols = images[:40].reshape(40, -1).astype(np.int64)
    settings = CodingSettings(k_steps=2, bucket_bits=8, likelihood_precision=16, batch_size=10)
    batches = []
    posterior_at = frozen.posterior_at

    def counted(symbols, *args):
        batches.append(len(symbols))
        return posterior_at(symbols, *args)

    monkeypatch.setattr(frozen, "posterior_at", counted)
    message = stream.encode_checked(frozen, symbols, settings)
    pushes = [hi - lo for _, lo, hi in stream.coding_batches(40, 10)]
    assert batches[: len(pushes)] == pushes
    assert batches[len(pushes):] == [sum(-(-n // 8) for n in pushes)]
    assert np.array_equal(stream.decode(frozen, message, 40, settings), symbols)


def test_k_step_inference_gives_the_same_posteriors_on_any_number_of_threads(trained):
    """A batch of a few tens of images (a two-valued block's lanes) is shared between threads;
    each image's noise is indexed by its place in the stream, so the split changes nothing."""
    from bbzip.models import threads
    from bbzip.models.frozen_mlp import _optimise_in_parallel

    _, images, model = trained
    frozen = freeze(model)
    symbols = images[:40].reshape(40, -1).astype(np.int64)
    mean, raw = frozen.encode_images(symbols)
    results = []
    for cores in (1, 2, 3):
        with threads.limited(cores):
            results.append(_optimise_in_parallel(frozen, symbols, mean, raw, 3, 5e-3, 0, 7 + np.arange(40)))
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))
