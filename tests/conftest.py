import numpy as np
import pytest
import torch
from PIL import Image

from bbzip.models.data import load_named
from bbzip.models.vae import MLPVAE, VAEConfig
from bbzip.models.weights import save_model


@pytest.fixture(scope="session")
def grey_test_images():
    return load_named("mnist", "test")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Small untrained models, saved as user model files (fast to code with)."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for likelihood in ("bernoulli", "logistic"):
        torch.manual_seed(0)
        path = folder / f"tiny-{likelihood}.safetensors"
        save_model(MLPVAE(VAEConfig(likelihood, latent=4, hidden=32)), path, {"command": "tests"})
        paths[likelihood] = path
    return paths


@pytest.fixture
def image_folder(tmp_path, grey_test_images):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(grey_test_images[i]).save(folder / f"{i:02d}.png")
    Image.fromarray(grey_test_images[20]).resize((30, 31)).save(folder / "sub" / "odd-size.png")
    np.save(folder / "stack.npy", grey_test_images[30:35])
    return folder
