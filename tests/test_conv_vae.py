"""The convolutional VAE (the paper's CIFAR-10 system): its torch form, its integer form, exact
coding and K-step inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bbzip.models import stream
from bbzip.models.coding_settings import CodingSettings
from bbzip.models.conv_vae import ConvVAE
from bbzip.models.conv_vae_config import ConvVAEConfig
from bbzip.models.frozen_conv_vae import FrozenConvVAE, depth_to_space, space_to_depth
from bbzip.models.objectives import negative_elbo

SMALL = dict(height=8, width=12, filters=8, blocks=1, latent_channels=2)


def _smooth_images(n: int, channels: int, seed: int, height: int = 8, width: int = 12) -> np.ndarray:
    """Images a model learns something from in a few steps: gradients plus noise, channels alike."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(height), np.arange(width)) * (120 / width)
    base = ramp[None] + rng.integers(0, 100, (n, 1, 1)) + rng.normal(0, 4, (n, height, width))
    images = np.stack([base + 10 * c for c in range(channels)], axis=-1)
    images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    return images if channels > 1 else images[..., 0]


def _trained(channels: int, steps: int = 40) -> ConvVAE:
    torch.manual_seed(0)
    model = ConvVAE(ConvVAEConfig(channels=channels, **SMALL))
    x = torch.from_numpy(_smooth_images(64, channels, 0))
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        loss = negative_elbo(model, x).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


@pytest.fixture(scope="module", params=[1, 3], ids=["grey", "rgb"])
def trained(request):
    return _trained(request.param)


def test_training_lowers_the_loss(trained):
    untrained = ConvVAE(trained.config)
    x = torch.from_numpy(_smooth_images(32, trained.config.channels, 5))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = negative_elbo(untrained, x, generator).mean().item()
        after = negative_elbo(trained, x, generator).mean().item()
    assert after < 0.8 * before


def test_space_to_depth_is_torch_s_pixel_unshuffle():
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float64).reshape(2, 3, 4, 6)
    expected = torch.nn.functional.pixel_unshuffle(torch.from_numpy(x), 2).numpy()
    assert np.array_equal(space_to_depth(x), expected)
    assert np.array_equal(depth_to_space(expected), x)


def test_integer_networks_follow_the_float_model(trained):
    """Encoder and decoder on integers give the float model's numbers to within quantisation."""
    frozen = FrozenConvVAE.freeze(trained)
    images = _smooth_images(6, trained.config.channels, 3)
    with torch.no_grad():
        mean, raw = trained.posterior_raw(torch.from_numpy(images))
    integer_mean, integer_raw = frozen.encode_images(images.reshape(6, -1))
    assert np.abs(integer_mean / 2**16 - mean.numpy()).max() < 1e-3
    assert np.abs(integer_raw / 2**16 - raw.numpy()).max() < 1e-3
    z = np.round(mean.numpy() * 2**16)
    with torch.no_grad():
        expected = trained.likelihood_params(torch.from_numpy(z / 2**16).float())
    params = frozen.parameters_of(z) / 4096.0
    k = trained.config.channels
    assert np.abs(params[..., :k] - expected["mean"].numpy()).max() < 0.05
    assert np.abs(params[..., k : 2 * k] - expected["log_scale"].numpy()).max() < 1e-3


@pytest.mark.parametrize("k_steps", [0, 3])
def test_images_round_trip_exactly(trained, k_steps):
    frozen = FrozenConvVAE.freeze(trained)
    symbols = _smooth_images(23, trained.config.channels, 1).reshape(23, -1)
    settings = CodingSettings(k_steps=k_steps, lr=0.05, batch_size=10)
    data = stream.encode(frozen, symbols, settings)
    assert np.array_equal(stream.decode(frozen, data, len(symbols), settings), symbols)


def test_the_codelength_estimate_matches_the_archive(trained):
    frozen = FrozenConvVAE.freeze(trained)
    symbols = _smooth_images(200, trained.config.channels, 2).reshape(200, -1)
    settings = CodingSettings(batch_size=100)
    actual = 8 * len(stream.encode(frozen, symbols, settings))
    estimate = frozen.codelength_bits(symbols, settings).sum()
    assert abs(actual - estimate) < 0.03 * actual + 512


def test_k_steps_follow_the_gradient_of_the_elbo(trained):
    """The integer decoder's backward pass points where torch's gradient of -log p(x|z) does."""
    frozen = FrozenConvVAE.freeze(trained)
    images = _smooth_images(4, trained.config.channels, 4)
    with torch.no_grad():
        mean, _ = trained.posterior_raw(torch.from_numpy(images))
    z = torch.round(mean * 2**16) / 2**16
    z.requires_grad_(True)
    loss = -trained.log_likelihood(torch.from_numpy(images), trained.likelihood_params(z)).sum()
    loss.backward()
    from bbzip.models.frozen_mlp import _Pixels

    integer = frozen.likelihood_gradient(_Pixels(images.reshape(4, -1)), (z.detach().numpy() * 2**16).astype(np.float64))
    expected = z.grad.numpy()
    cosine = (integer * expected).sum() / (np.linalg.norm(integer) * np.linalg.norm(expected))
    assert cosine > 0.99


def test_refreezing_the_float_state_gives_the_same_integers(trained):
    frozen = FrozenConvVAE.freeze(trained)
    again = ConvVAE(trained.config)
    again.load_state_dict({name: torch.from_numpy(value) for name, value in frozen.float_state().items()})
    tensors, _ = FrozenConvVAE.freeze(again).to_tensors()
    for name, value in frozen.to_tensors()[0].items():
        assert np.array_equal(tensors[name], value), name


def test_a_frozen_file_of_the_wrong_shapes_is_refused(trained):
    frozen = FrozenConvVAE.freeze(trained)
    tensors, _ = frozen.to_tensors()
    tensors["decoder.conv_up2.weight"] = tensors["decoder.conv_up2.weight"][:-1]
    with pytest.raises(ValueError, match="wrong shape"):
        FrozenConvVAE.from_tensors(trained.config, tensors)


def test_config_is_checked():
    with pytest.raises(ValueError, match="multiples of 4"):
        ConvVAEConfig(height=30)
    with pytest.raises(ValueError, match="channels"):
        ConvVAEConfig(channels=2)


def test_a_stack_round_trips_through_the_api(tmp_path, trained):
    from bbzip.models import api
    from bbzip.models.architectures import save_frozen

    path = tmp_path / "conv.safetensors"
    save_frozen(FrozenConvVAE.freeze(trained), path)
    images = _smooth_images(9, trained.config.channels, 6)
    data = api.compress(images, model=str(path))
    assert np.array_equal(api.decompress(data, model=str(path)), images)


@pytest.fixture(scope="module")
def rgb_model_file(tmp_path_factory):
    from bbzip.models.architectures import save_frozen

    path = tmp_path_factory.mktemp("conv") / "rgb.safetensors"
    save_frozen(FrozenConvVAE.freeze(_trained(3)), path)
    return path


@pytest.mark.parametrize("fallback", ["--fallback", "--no-fallback"])
def test_colour_stacks_round_trip_through_bbzip(tmp_path, rgb_model_file, fallback):
    """(N, H, W, 3) arrays in .npy and .npz go to a colour model of their size; with the
    fallback, images a classic codec keeps smaller are stored as colour images in the array."""
    from click.testing import CliRunner

    from bbzip.cli.main import cli

    def run(*args):
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    folder = tmp_path / "arrays"
    folder.mkdir()
    smooth = _smooth_images(12, 3, 8)
    flat = np.full((3, 8, 12, 3), 77, dtype=np.uint8)  # a classic codec keeps these in a few bytes
    np.save(folder / "stack.npy", np.concatenate([smooth[:6], flat, smooth[6:]]))
    np.savez(folder / "pair.npz", colour=smooth[:4], grey=smooth[:2, ..., 0])
    run("compress", folder, "-o", tmp_path / "a.bb", "--model", rgb_model_file, fallback)
    listing = run("list", "-v", tmp_path / "a.bb")
    assert "15x8x12x3" in listing
    if fallback == "--fallback":
        assert "model+classic" in listing
    run("decompress", tmp_path / "a.bb", "-o", tmp_path / "out", "--model", rgb_model_file)
    for name in ("stack.npy", "pair.npz"):
        assert (tmp_path / "out" / "arrays" / name).read_bytes() == (folder / name).read_bytes()


def test_small_colour_arrays_go_to_the_tiled_default_and_to_the_conv_vae_when_asked(tmp_path):
    """32x32 colour arrays and image files go to the tiled photo model by default (it codes them
    smaller); --model conv-photo-patches-rha codes the array with the paper's system."""
    from click.testing import CliRunner
    from PIL import Image

    from bbzip.cli.main import cli
    from bbzip.models.coder_choice import pick_default, pick_default_for_most

    patches = _smooth_images(4, 3, 9, 32, 32)
    assert pick_default([patches]).name == pick_default_for_most([patches]).name == "tiled-rgb-photos-mixture-large"
    np.save(tmp_path / "stack.npy", patches)
    Image.fromarray(patches[0]).save(tmp_path / "one.png")
    for source, model in (("stack.npy", None), ("one.png", None), ("stack.npy", "conv-photo-patches-rha")):
        chosen = ["--model", model] if model else []
        result = CliRunner().invoke(cli, ["compress", str(tmp_path / source), "-o", str(tmp_path / f"{source}.bb"),
                                          "--no-fallback", "-f", *chosen])
        assert result.exit_code == 0 and f"by {model or 'tiled-rgb-photos-mixture-large'}" in result.output, result.output
