"""The registry's promise: an architecture is one module and one registry line. A toy
architecture, defined here and registered for the test alone, codes through the API and through
`bbzip compress` / `decompress` with nothing else changed."""
from dataclasses import asdict, dataclass

import numpy as np
import pytest
from click.testing import CliRunner

from bbzip import bbans
from bbzip.cli.main import cli
from bbzip.models import api, registry
from bbzip.models.architectures import save_frozen
from bbzip.models.files import ModelFileError
from bbzip.models.interface import FrozenModel
from bbzip.models.pixels import Pixels


@dataclass(frozen=True)
class ToyConfig:
    height: int = 28
    width: int = 28
    two_valued: bool = False

    @property
    def pixels(self) -> int:
        return self.height * self.width

    @property
    def codes(self) -> Pixels:
        return Pixels(channels=1, two_valued=self.two_valued, height=self.height, width=self.width)

    def to_dict(self) -> dict:
        return asdict(self)


class FrozenToy(FrozenModel):
    """Every pixel uniform over its values: no latent, no bits back, one tensor."""

    architecture = "toy-uniform"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        self.config = config

    def batch_codec(self, settings, first_index, n_images):
        return bbans.Uniform(1 if self.config.two_valued else 8, shape=(n_images, self.config.pixels))

    def codelength_bits(self, symbols, settings):
        return np.full(len(symbols), float(symbols.shape[1] * (1 if self.config.two_valued else 8)))

    @classmethod
    def freeze(cls, trained_model):
        raise NotImplementedError

    def to_tensors(self):
        return {"decoder.levels": np.array([self.config.codes.values], dtype=np.int64)}, {"config": self.config.to_dict()}

    @classmethod
    def from_tensors(cls, config, tensors):
        if tensors.get("decoder.levels") is None or int(tensors["decoder.levels"][0]) != config.codes.values:
            raise ValueError("levels do not match the config")
        return cls(config)


@pytest.fixture
def toy_file(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.ARCHITECTURES, "toy-uniform", registry.Architecture("toy-uniform", FrozenToy))
    path = tmp_path / "toy.safetensors"
    save_frozen(FrozenToy(ToyConfig(height=8, width=6)), path)
    return path


def test_a_registered_toy_architecture_codes_through_the_api(toy_file):
    images = np.random.default_rng(0).integers(0, 256, size=(12, 8, 6), dtype=np.uint8)
    record = api.compress(images, model=str(toy_file), cores=1)
    assert api.read_record(record).model["architecture"] == "toy-uniform"
    np.testing.assert_array_equal(api.decompress(record, model=str(toy_file), cores=1), images)
    assert len(record) >= images.size  # uniform: 8 bits a pixel, and a little more for the record


def test_a_registered_toy_architecture_codes_through_the_command_line(tmp_path, toy_file):
    images = np.random.default_rng(1).integers(0, 256, size=(12, 8, 6), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    runner = CliRunner()
    for fallback in ("--fallback", "--no-fallback"):
        archive = tmp_path / f"x{fallback}.bb"
        result = runner.invoke(cli, ["compress", str(tmp_path / "x.npy"), "-o", str(archive), "--model", str(toy_file), fallback])
        assert result.exit_code == 0, result.output
        out = tmp_path / f"out{fallback}"
        result = runner.invoke(cli, ["decompress", str(archive), "-o", str(out), "--model", str(toy_file)])
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(np.load(out / "x.npy"), images)
    assert "toy-uniform" in runner.invoke(cli, ["list", str(tmp_path / "x--no-fallback.bb")]).output


def test_an_unregistered_architecture_is_refused_with_the_known_ones(tmp_path):
    path = tmp_path / "toy.safetensors"
    save_frozen(FrozenToy(ToyConfig()), path)
    known = "conv-vae, local-ar-vae, mlp-vae, tiled-ar-vae"
    with pytest.raises(ModelFileError, match=f"unknown architecture 'toy-uniform' \\(known: {known}\\)"):
        api.compress(np.zeros((2, 28, 28), dtype=np.uint8), model=str(path))
