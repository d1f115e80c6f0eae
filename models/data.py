"""Image data sets as uint8 arrays (N, H, W): the named MNIST sets and the formats users have.

Named sets are read from a data folder (BBZIP_DATA_DIR, else ../shared/data beside the repo),
as `mnist/mnist.npz` with uint8 arrays x_train (and x_valid, if the training images are split),
x_test; without it the test images come from the sample bbzip ships (samples/mnist-test.npz).
`binary-mnist` is grey MNIST thresholded at x >= 128 (the paper's protocol), `mnist` is grey.
"train" is the 60k training images (x_train + x_valid), "test" the 10k test images.
User data: a folder of images, .npy/.npz arrays, IDX files, or CIFAR python batches.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

NAMED = ("binary-mnist", "mnist")
IMAGE_SUFFIXES = {".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".jpg", ".jpeg"}


class DataError(Exception):
    """Data could not be found or read."""


def data_dir() -> Path:
    env = os.environ.get("BBZIP_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SHIPPED_TEST_SET = SAMPLES / "mnist-test.npz"  # the 10k MNIST test images and labels
WHERE_TO_GET_MNIST = ("get MNIST as mnist.npz (uint8 arrays x_train, x_test; Keras's mnist.npz is one) and put it in "
                      "{folder}/mnist/, or set BBZIP_DATA_DIR to the folder that holds mnist/mnist.npz; a folder of "
                      "images, .npy/.npz or IDX files can be given as DATA instead")


def load_named(name: str, split: str) -> np.ndarray:
    if name not in NAMED:
        raise DataError(f"unknown data set {name!r} (known: {', '.join(NAMED)})")
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    path = data_dir() / "mnist" / "mnist.npz"
    if not path.exists():
        if split != "test" or not SHIPPED_TEST_SET.exists():
            raise DataError(f"{path}: the MNIST {split}ing images are not here: " + WHERE_TO_GET_MNIST.format(folder=data_dir()))
        path = SHIPPED_TEST_SET
    with np.load(path) as arrays:
        try:
            if split == "train":
                grey = np.concatenate([arrays["x_train"]] + ([arrays["x_valid"]] if "x_valid" in arrays else []))
            else:
                grey = arrays["x_test"]
        except KeyError as error:
            raise DataError(f"{path}: no array {error} (expected x_train and x_test)") from None
    if grey.dtype != np.uint8 or grey.ndim != 3:
        raise DataError(f"{path}: MNIST images must be uint8 (N, 28, 28), not {grey.dtype} {grey.shape}")
    return (grey >= 128).astype(np.uint8) if name == "binary-mnist" else grey


def load_array_file(path: Path) -> np.ndarray:
    """uint8 images from .npy/.npz, IDX (idx3-ubyte) or a CIFAR python batch."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return _as_images(np.load(path, allow_pickle=False), path)
        if name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as arrays:
                keys = [k for k in ("x_train", "x", "images", "x_test") if k in arrays] or list(arrays)
                if not keys:
                    raise DataError(f"{path}: empty .npz")
                return _as_images(arrays[keys[0]], path)
        if "idx" in name or name.endswith("-ubyte"):
            return _read_idx(path)
        if name.startswith(("data_batch", "test_batch")):
            return _read_cifar_batch(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    raise DataError(f"{path}: unknown array format (expected .npy, .npz, IDX or a CIFAR batch)")


def load_folder(path: Path) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in Path(path).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no images found")
    images = []
    for file in files:
        with Image.open(file) as image:
            images.append(np.asarray(image.convert("L")))
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"{path}: images have different sizes {sorted(shapes)}")
    return np.stack(images)


def load_any(source: str, split: str = "train") -> np.ndarray:
    """A named set, a folder, or an array file."""
    if source in NAMED:
        return load_named(source, split)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such file, folder or named data set")
    return load_folder(path) if path.is_dir() else load_array_file(path)


def _as_images(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 images, got {array.dtype}")
    if array.ndim == 2:
        side = int(round(array.shape[1] ** 0.5))
        if side * side != array.shape[1]:
            raise DataError(f"{path}: rows of {array.shape[1]} values are not square images")
        array = array.reshape(len(array), side, side)
    if array.ndim not in (3, 4):
        raise DataError(f"{path}: expected images (N, H, W) or (N, H, W, C), got shape {array.shape}")
    return array


def _read_idx(path: Path) -> np.ndarray:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: IDX size does not match its header")
    return _as_images(body.reshape(dims), path)


class _RestrictedUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allow only the numpy array reconstruction they need."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"CIFAR batch refers to {module}.{name}, which is not allowed")


def _read_cifar_batch(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        batch = _RestrictedUnpickler(f, encoding="bytes").load()
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    if data is None:
        raise DataError(f"{path}: not a CIFAR batch")
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
