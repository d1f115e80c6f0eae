"""The data formats a user brings to `bbzip train`: IDX, CIFAR python batches, .npy/.npz, folders."""
import gzip
import pickle

import numpy as np
import pytest
from PIL import Image

from bbzip.models.data import DataError, load_any


def _idx_bytes(images: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, images.ndim]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
    return header + images.tobytes()


def test_idx_plain_and_gzipped(tmp_path, grey_test_images):
    images = grey_test_images[:7]
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(images))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"):
        np.testing.assert_array_equal(load_any(str(tmp_path / name)), images)


def test_idx_with_a_lying_header_is_refused(tmp_path, grey_test_images):
    data = bytearray(_idx_bytes(grey_test_images[:3]))
    data[7] = 9  # claims 9 images, holds 3
    (tmp_path / "bad-idx3-ubyte").write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match"):
        load_any(str(tmp_path / "bad-idx3-ubyte"))


def test_cifar_batch_becomes_rgb_images(tmp_path):
    rng = np.random.default_rng(0)
    flat = rng.integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": flat, b"labels": [0, 1, 2, 3]}, f)
    images = load_any(str(tmp_path / "data_batch_1"))
    assert images.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(images[1, :, :, 2], flat[1, 2048:].reshape(32, 32))


def test_cifar_batch_that_names_other_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"data": Payload()}, f)
    with pytest.raises(DataError, match="not allowed"):
        load_any(str(tmp_path / "data_batch_2"))


def test_npy_npz_and_flat_rows(tmp_path, grey_test_images):
    images = grey_test_images[:5]
    np.save(tmp_path / "a.npy", images.reshape(5, -1))
    np.savez(tmp_path / "b.npz", x_train=images)
    np.testing.assert_array_equal(load_any(str(tmp_path / "a.npy")), images)
    np.testing.assert_array_equal(load_any(str(tmp_path / "b.npz")), images)
    np.save(tmp_path / "floats.npy", images.astype(np.float32))
    with pytest.raises(DataError, match="uint8"):
        load_any(str(tmp_path / "floats.npy"))


def test_folder_in_sorted_order_and_mixed_sizes_refused(tmp_path, grey_test_images):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in (2, 0, 1):
        Image.fromarray(grey_test_images[i]).save(folder / f"{i}.png")
    np.testing.assert_array_equal(load_any(str(folder)), grey_test_images[:3])
    Image.fromarray(grey_test_images[3]).resize((20, 20)).save(folder / "3.png")
    with pytest.raises(DataError, match="different sizes"):
        load_any(str(folder))


def test_unknown_source_is_named(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_any(str(tmp_path / "missing"))


def test_named_test_images_come_from_the_shipped_sample_without_a_data_folder(tmp_path, monkeypatch):
    from bbzip.models import data

    monkeypatch.setenv("BBZIP_DATA_DIR", str(tmp_path / "nothing-here"))
    binary = data.load_named("binary-mnist", "test")
    with np.load(data.SHIPPED_TEST_SET) as shipped:
        np.testing.assert_array_equal(binary, (shipped["x_test"] >= 128).astype(np.uint8))
    with pytest.raises(DataError, match="BBZIP_DATA_DIR"):
        data.load_named("mnist", "train")


def test_a_keras_style_mnist_npz_gives_the_60k_training_images(tmp_path, monkeypatch, grey_test_images):
    from bbzip.models import data

    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "mnist.npz", x_train=grey_test_images[:60], x_test=grey_test_images[60:70])
    monkeypatch.setenv("BBZIP_DATA_DIR", str(tmp_path))
    np.testing.assert_array_equal(data.load_named("mnist", "train"), grey_test_images[:60])


def test_train_on_a_missing_named_set_says_where_to_get_it_in_one_line(tmp_path):
    from click.testing import CliRunner

    from bbzip.cli.main import cli

    result = CliRunner(env={"BBZIP_DATA_DIR": str(tmp_path)}).invoke(cli, ["train", "mnist", "-o", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "get MNIST as mnist.npz" in result.output and str(tmp_path / "mnist") in result.output


def test_the_shipped_samples_match_their_checksums():
    import hashlib
    from pathlib import Path

    samples = Path(__file__).resolve().parents[1] / "samples"
    listed = {}
    for line in (samples / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    present = {str(p.relative_to(samples)) for p in samples.rglob("*") if p.is_file()} - {"README.md", "SHA256SUMS"}
    assert present == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((samples / name).read_bytes()).hexdigest() == digest, name
