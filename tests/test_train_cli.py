"""`bbzip train` / `train-encoder` on a few hundred images, and exact resume."""
import numpy as np
import torch
from click.testing import CliRunner

from cli.main import cli
from models.train import train_vae
from models.vae import MLPVAE, VAEConfig
from models.weights import load_model


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
