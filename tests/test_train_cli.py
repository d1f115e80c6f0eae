"""`bbzip train` / `train-encoder` on a few hundred images, and exact resume."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bbzip.cli.main import cli
from bbzip.models.train import train_vae
from bbzip.models.vae import MLPVAE, VAEConfig
from bbzip.models.weights import load_model


def test_train_then_train_encoder(tmp_path, grey_test_images):
    data = tmp_path / "bin.npy"
    np.save(data, (grey_test_images[:400] >= 128).astype(np.uint8))
    runner = CliRunner()
    vae = tmp_path / "vae.safetensors"
    result = runner.invoke(cli, ["train", str(data), "-o", str(vae), "--epochs", "2", "--hidden", "32", "--latent", "4",
                                 "--holdout", "100", "--checkpoint-every", "1"])
    assert result.exit_code == 0, result.output
    assert "held-out bpd" in result.output
    model, metadata = load_model(vae)
    assert model.config.likelihood == "bernoulli" and metadata["command"].startswith("bbzip train")
    rha = tmp_path / "rha.safetensors"
    result = runner.invoke(cli, ["train-encoder", str(vae), str(data), "-o", str(rha), "--alpha", "0.5", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    tuned, _ = load_model(rha)
    for a, b in zip(model.decoder.parameters(), tuned.decoder.parameters()):
        assert torch.equal(a, b)
    again = runner.invoke(cli, ["train", str(data), "-o", str(vae), "--epochs", "1"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_resume_gives_the_same_weights(tmp_path, grey_test_images):
    images = (grey_test_images[:200] >= 128).astype(np.uint8)

    def fresh():
        torch.manual_seed(0)
        return MLPVAE(VAEConfig("bernoulli", latent=4, hidden=32))

    straight = fresh()
    train_vae(straight, images, epochs=3, batch_size=50)
    checkpoint = tmp_path / "run.ckpt"
    interrupted = fresh()
    train_vae(interrupted, images, epochs=2, batch_size=50, checkpoint=checkpoint, checkpoint_every=1)
    resumed = fresh()
    train_vae(resumed, images, epochs=3, batch_size=50, checkpoint=checkpoint, resume=True)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_evaluate_reports_elbo_iwae_and_the_oracle(tmp_path, grey_test_images, tiny_models):
    import json

    data = tmp_path / "bin.npy"
    np.save(data, (grey_test_images[:60] >= 128).astype(np.uint8))
    result = CliRunner().invoke(cli, ["-q", "evaluate", str(tiny_models["bernoulli"]), str(data), "--samples", "2",
                                      "--iwae", "5", "--oracle-epochs", "20", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["images"] == 60
    assert figures["iwae_bpd"] <= figures["elbo_bpd"] + 0.05  # IWAE is the tighter bound
    # Per-image optimisation (20 epochs) beats the amortised encoder: a positive gap, as reported.
    assert figures["oracle_bpd"] < figures["elbo_bpd"] and figures["amortisation_gap_bpd"] > 0
    grey = tmp_path / "grey.npy"
    np.save(grey, grey_test_images[:5])
    refused = CliRunner().invoke(cli, ["evaluate", str(tiny_models["bernoulli"]), str(grey)])
    assert refused.exit_code == 1 and "binary" in refused.output


def test_black_and_white_images_train_a_bernoulli_model_and_grey_ones_cannot(tmp_path, grey_test_images):
    """One definition of a binary image (models.architectures.binary_scale) for training too:
    0/255 images are binary; a Bernoulli model on grey images is refused, not trained on nonsense."""
    runner = CliRunner()
    black_and_white = tmp_path / "bw.npy"
    np.save(black_and_white, (grey_test_images[:200] >= 128).astype(np.uint8) * 255)
    vae = tmp_path / "vae.safetensors"
    result = runner.invoke(cli, ["train", str(black_and_white), "-o", str(vae), "--epochs", "1", "--hidden", "16",
                                 "--latent", "2", "--holdout", "50"])
    assert result.exit_code == 0, result.output
    assert load_model(vae)[0].config.likelihood == "bernoulli"
    bpd = float(result.output.split("held-out bpd (-ELBO)")[-1].split()[0])
    assert 0 < bpd < 2  # near a bit a pixel after one epoch (0.1 fed 0/255 as Bernoulli data: -3.7e13)
    grey = tmp_path / "grey.npy"
    np.save(grey, grey_test_images[:200])
    result = runner.invoke(cli, ["train", str(grey), "-o", str(tmp_path / "g.safetensors"), "--likelihood", "bernoulli",
                                 "--epochs", "1"])
    assert result.exit_code == 1 and "two-valued" in result.output and not (tmp_path / "g.safetensors").exists()


def test_train_encoder_from_a_shipped_model_keeps_its_decoder_integers(tmp_path, grey_test_images):
    """A shipped model has no float file: train-encoder starts from the network its integers
    stand for, and what it writes freezes to the shipped decoder part, integer for integer."""
    from bbzip.models.architectures import freeze
    from bbzip.models.coder_choice import load_coder
    from bbzip.models.shipped import split_tensors

    data = tmp_path / "bin.npy"
    np.save(data, (grey_test_images[:200] >= 128).astype(np.uint8))
    rha = tmp_path / "rha.safetensors"
    result = CliRunner().invoke(cli, ["train-encoder", "mlp-binary-mnist-baseline", str(data), "-o", str(rha), "--epochs", "1",
                                      "--holdout", "50"])
    assert result.exit_code == 0, result.output
    tuned, metadata = load_model(rha)
    assert metadata["base_model"].startswith("bbzip train binary-mnist")
    fresh = split_tensors(freeze(tuned))
    shipped = split_tensors(load_coder("mlp-binary-mnist-baseline").model)
    assert fresh["decoder"].keys() == shipped["decoder"].keys()
    for key, value in shipped["decoder"].items():
        assert np.array_equal(fresh["decoder"][key], value), key
    assert any(not np.array_equal(fresh["encoder"][key], value) for key, value in shipped["encoder"].items())


def test_train_says_what_it_trains_on(tmp_path):
    """0.1's help offered "a CIFAR batch", which training then refused: a colour batch is refused
    by the single-channel architectures with a line that says why, and trains the tiled model
    on its patches."""
    import pickle

    help_text = " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split())
    assert "CIFAR batches are read" in help_text and "tiled-ar-vae" in help_text
    flat = np.random.default_rng(0).integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": flat, b"labels": [0, 1, 2, 3]}, f)
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "data_batch_1"), "-o", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 2 and "single-channel" in result.output
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "data_batch_1"), "-o", str(tmp_path / "t.safetensors"),
                                      "--architecture", "tiled-ar-vae", "--patch", "8", "--patches", "16",
                                      "--set", "latent_channels=0", "--set", "head=8", "--epochs", "1", "--holdout", "0"])
    assert result.exit_code == 0, result.output
    assert "3-channel tiled-ar-vae (16 patches of 8x8)" in result.output
    missing = CliRunner().invoke(cli, ["train", str(tmp_path / "data_batch_1"), "-o", str(tmp_path / "u.safetensors"),
                                       "--architecture", "tiled-ar-vae"])
    assert missing.exit_code == 2 and "--patch" in missing.output
    unknown = CliRunner().invoke(cli, ["train", str(tmp_path / "data_batch_1"), "-o", str(tmp_path / "u.safetensors"),
                                       "--architecture", "tiled-ar-vae", "--patch", "8", "--set", "depth=3"])
    assert unknown.exit_code == 2 and "has the settings" in unknown.output


def test_the_convolutional_vae_trains_on_cifar_batches_and_on_patches(tmp_path):
    """conv-vae trains on a CIFAR batch as it is (32 x 32 RGB), or on patches of a folder of
    photos; its encoder is fine-tuned on the same patches (--patch), by reverse half-asleep
    with aggregate-posterior samples or by the denoising objective."""
    import pickle

    from PIL import Image

    flat = np.random.default_rng(0).integers(0, 256, size=(6, 3 * 32 * 32), dtype=np.uint8)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": flat, b"labels": list(range(6))}, f)
    small = ["--set", "filters=4", "--set", "blocks=1", "--epochs", "1", "--holdout", "0"]
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "data_batch_1"), "-o", str(tmp_path / "c.safetensors"),
                                      "--architecture", "conv-vae", *small])
    assert result.exit_code == 0, result.output
    assert "3-channel conv-vae (32x32)" in result.output
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(2):
        Image.fromarray(np.random.default_rng(n).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(photos / f"{n}.png")
    result = CliRunner().invoke(cli, ["train", str(photos), "-o", str(tmp_path / "p.safetensors"), "--architecture", "conv-vae",
                                      "--patch", "8", "--patches", "16", *small])
    assert result.exit_code == 0, result.output
    model, _ = load_model(tmp_path / "p.safetensors")
    assert (model.config.height, model.config.width, model.config.filters) == (8, 8, 4)
    for objective in (["--samples-from", "aggregate"], ["--objective", "denoise"]):
        result = CliRunner().invoke(cli, ["train-encoder", str(tmp_path / "p.safetensors"), str(photos), "-o",
                                          str(tmp_path / "e.safetensors"), "-f", "--patch", "8", "--patches", "16",
                                          "--epochs", "1", "--holdout", "0", *objective])
        assert result.exit_code == 0, result.output
    wrong = CliRunner().invoke(cli, ["train-encoder", str(tmp_path / "p.safetensors"), str(photos), "-o",
                                     str(tmp_path / "w.safetensors"), "--patch", "16"])
    assert wrong.exit_code == 2 and "8x8" in wrong.output
    np.save(tmp_path / "stack.npy", np.random.default_rng(3).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8))
    evaluated = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "e.safetensors"), str(tmp_path / "stack.npy")])
    assert evaluated.exit_code == 0 and "on 5 images" in evaluated.output, evaluated.output
    no_data = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "e.safetensors")])
    assert no_data.exit_code == 2 and "give DATA" in no_data.output


def test_a_two_process_data_parallel_run_gives_the_weights_of_one_process(tmp_path):
    """torchrun with two processes (gloo on CPU), each computing one shard of every batch, and one
    process computing both shards in turn (--shards 2) write the same weights."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image
    from safetensors.numpy import load_file

    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(2):
        Image.fromarray(np.random.default_rng(n).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(photos / f"{n}.png")
    common = ["train", str(photos), "--architecture", "conv-vae", "--patch", "8", "--patches", "40", "--set", "filters=4",
              "--set", "blocks=1", "--epochs", "2", "--batch-size", "8", "--holdout", "8", "--threads", "1", "--device", "cpu"]
    one = CliRunner().invoke(cli, [*common, "-o", str(tmp_path / "one.safetensors"), "--shards", "2"])
    assert one.exit_code == 0, one.output
    bbzip = Path(sys.executable).with_name("bbzip")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(bbzip),
                          *common, "-o", str(tmp_path / "two.safetensors")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    if two.returncode != 0:  # the end of the launcher's log says which process failed and why
        pytest.fail(f"torchrun exited {two.returncode}:\n{(two.stdout + two.stderr)[-4000:]}")
    assert "data-parallel: 2 processes" in two.stderr + two.stdout
    first, second = load_file(tmp_path / "one.safetensors"), load_file(tmp_path / "two.safetensors")
    assert first.keys() == second.keys()
    for key, value in first.items():
        assert np.array_equal(value, second[key]), key


def test_a_device_torch_does_not_see_is_refused(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = CliRunner().invoke(cli, ["train", "binary-mnist", "-o", str(tmp_path / "m.safetensors"), "--device", "cuda"])
    assert result.exit_code == 1 and "no CUDA device" in result.output
