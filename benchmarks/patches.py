"""32 x 32 colour patches: the paper's CIFAR-10 system (the convolutional VAE) beside the classic
codecs and the tiled photo model (paper Figs. 7b, 8b; issue 20).

    python -m benchmarks.patches [--baseline NAME] [--rha NAME] [--images 1000] [--k 0 1 2 4 8]
                                 [--data STACK.npy | CIFAR test_batch] [--quick]

The patches: `--images` random 32 x 32 patches (seed 0, flipped at random, as training draws
them) of the photos in ../shared/data/photos/test/ (all three scales; BBZIP_DATA_DIR moves it),
photos the models never saw; or the images of a stack given with --data (a CIFAR-10 test batch,
an .npy/.npz of (N, 32, 32, 3)).

- the convolutional VAE, each encoder and K: real archive bytes (`bbzip compress --no-fallback`
  of the stack as one .npy), the -ELBO of the coder's own posteriors under the float decoder,
  and compress / decompress images a second through the Python API (every archive decoded and
  compared);
- the tiled photo model (the colour default for photos) on the same patches, as one record
  (each patch its own image, in its own tile);
- PNG (optimize), WebP lossless (method 6) and JPEG XL lossless effort 7, each patch its own
  file, and the patches as one mosaic image.

bpd = 8 x bytes / (patches x 32 x 32 x 3). Also: multiply-accumulates per image of the VAE's
networks and how fast its integer products run against this machine's float64 matrix products.
"""
from __future__ import annotations

import argparse
import io
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
import pillow_jxl  # noqa: F401 - registers the JXL format with Pillow

from bbzip.cli.main import cli
from bbzip.models import api
from bbzip.models.coder_choice import default_settings, load_coder
from bbzip.models.data import data_dir, load_any
from bbzip.models.evaluate import values_per_image
from bbzip.models.patches import folder_images, random_patches
from bbzip.models.vae import gaussian_kl
from bbzip.models.weights import load_trained

from .common import markdown_table, write_results

CLASSIC = {"PNG": ("PNG", {"optimize": True}), "WebP lossless": ("WEBP", {"lossless": True, "quality": 100, "method": 6}),
           "JPEG XL e7": ("JXL", {"lossless": True, "effort": 7})}
# ANCHORS.md / the paper, CIFAR-10 (first 1000 test images): compressed bpd at K = 0.
PAPER = {"baseline": 4.605, "rha": 4.586}


def test_patches(count: int, seed: int = 0) -> np.ndarray:
    """`count` random 32 x 32 patches of the test photos (all scales)."""
    return random_patches(folder_images(data_dir() / "photos" / "test", 3), 32, count, seed)


def classic_bytes(images: np.ndarray, fmt: str, options: dict) -> int:
    """Bytes of one image in a classic codec, checked to decode exactly."""
    buffer = io.BytesIO()
    Image.fromarray(images).save(buffer, format=fmt, **options)
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        if not np.array_equal(np.asarray(image.convert("RGB")), images):
            raise RuntimeError(f"{fmt} did not decode exactly")
    return len(buffer.getvalue())


def mosaic(images: np.ndarray) -> np.ndarray:
    """The images side by side in a near-square grid (empty cells black)."""
    n, h, w, c = images.shape
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * columns, h, w, c), dtype=np.uint8)
    grid[:n] = images
    return grid.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, c)


def elbo_bpd(name: str, images: np.ndarray, k: int, samples: int = 4) -> float:
    """-ELBO (bits/dim) of the posteriors the coder uses (the exact path's K steps and noise),
    under the float decoder."""
    coder, (model, _) = load_coder(name), load_trained(name)
    settings = default_settings(coder, len(images), k_steps=k)
    symbols = coder.model.to_symbols(images)[0]
    generator, total = torch.Generator().manual_seed(0), 0.0
    mean, std = coder.model.posterior(symbols, k, settings.lr, settings.seed, 0)
    mean, std = torch.from_numpy(mean / 2.0**16).float(), torch.from_numpy(std / 2.0**16).float()
    with torch.no_grad():
        for _ in range(samples):
            z = mean + std * torch.randn(mean.shape, generator=generator)
            nll = -model.log_likelihood(torch.from_numpy(images), model.likelihood_params(z)) + gaussian_kl(mean, std)
            total += nll.sum().item() / samples
    return total / (len(images) * values_per_image(model.config) * math.log(2))


def run_vae(name: str, images: np.ndarray, k: int, folder: Path) -> dict:
    start = time.perf_counter()
    record = api.compress(images, model=name, k_steps=k)
    compress_s = time.perf_counter() - start
    start = time.perf_counter()
    restored = api.decompress(record, model=name)
    decompress_s = time.perf_counter() - start
    assert np.array_equal(restored, images), "round trip failed"
    np.save(folder / "patches.npy", images)
    cli(["-q", "compress", str(folder / "patches.npy"), "-o", str(folder / "patches.bb"), "-f", "--model", name,
         "--k-steps", str(k), "--no-fallback"], standalone_mode=False)
    archive_bytes = (folder / "patches.bb").stat().st_size
    return {"archive_bytes": archive_bytes, "archive_bpd": 8 * archive_bytes / images.size, "elbo_bpd": elbo_bpd(name, images, k),
            "compress_images_per_s": len(images) / compress_s, "decompress_images_per_s": len(images) / decompress_s,
            "compress_ms_per_image": 1e3 * compress_s / len(images), "decompress_ms_per_image": 1e3 * decompress_s / len(images)}


def tiled_model_bytes(name: str, images: np.ndarray) -> int:
    """The tiled model's bytes for the patches as one record, each patch its own image (and
    tile), checked to decode exactly."""
    record = api.compress(images, model=name)
    assert np.array_equal(api.decompress(record, model=name), images), "round trip failed"
    return len(record)


def macs_per_image(config) -> int:
    """Multiply-accumulates of the encoder and decoder convolutions for one image."""
    h, w, f, c = config.height, config.width, config.filters, config.channels
    quarter = (h // 4) * (w // 4)
    encoder = (h // 2) * (w // 2) * 4 * c * f + quarter * 4 * f * f + 2 * config.blocks * quarter * f * f + \
        quarter * f * 2 * config.latent_channels
    decoder = quarter * config.latent_channels * f + 2 * config.blocks * quarter * f * f + quarter * f * 4 * f + \
        (h // 2) * (w // 2) * f * 4 * config.outputs
    return 9 * (encoder + decoder)


def product_rates(name: str, images: np.ndarray) -> dict:
    """The integer networks' multiply-accumulates a second (encoder and decoder over the
    images), and a float64 matrix product's of the same size as the widest layer's, here."""
    model = load_coder(name).model
    symbols = model.to_symbols(images)[0]
    start = time.perf_counter()
    mean, _ = model.encode_images(symbols)
    model.parameters_of(mean)
    networks_s = time.perf_counter() - start
    a = np.random.default_rng(0).integers(-1000, 1000, (len(images) * 64, 9 * 4 * model.config.filters)).astype(np.float64)
    b = np.random.default_rng(1).integers(-1000, 1000, (a.shape[1], model.config.filters)).astype(np.float64)
    start = time.perf_counter()
    a @ b
    float_s = time.perf_counter() - start
    macs = macs_per_image(model.config)
    return {"macs_per_image": macs, "integer_macs_per_s": macs * len(images) / networks_s,
            "float64_macs_per_s": a.shape[0] * a.shape[1] * b.shape[1] / float_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="conv-photo-patches-baseline")
    parser.add_argument("--rha", default="conv-photo-patches-rha")
    parser.add_argument("--tiled", nargs="*", default=["tiled-rgb-photos"],
                        help="the photo models to compare with (none: --tiled alone)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--data", help="a stack of 32 x 32 RGB images instead of the photo patches (e.g. CIFAR's test_batch)")
    parser.add_argument("--k", nargs="+", type=int, default=[0, 1, 2, 4, 8])
    parser.add_argument("--quick", action="store_true", help="100 patches, K 0 and 2")
    args = parser.parse_args()
    count, ks = (100, [0, 2]) if args.quick else (args.images, args.k)
    images = (load_any(args.data, "test") if args.data else test_patches(count))[:count]
    source = args.data or f"{len(images)} random 32x32 patches of photos/test (seed 0)"
    pixels = images.size
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for encoder, name in (("baseline", args.baseline), ("rha", args.rha)):
            for k in ks:
                result = {"encoder": encoder, "model": name, "k": k, **run_vae(name, images, k, Path(tmp))}
                records.append(result)
                rows.append([f"conv VAE, {encoder} encoder", k, result["archive_bytes"], result["archive_bpd"], result["elbo_bpd"],
                             result["compress_images_per_s"], result["decompress_images_per_s"]])
                print(rows[-1], flush=True)
    classic = {}
    for label, (fmt, options) in CLASSIC.items():
        each = sum(classic_bytes(image, fmt, options) for image in images)
        whole = classic_bytes(mosaic(images), fmt, options)
        classic[label] = {"each_bytes": each, "each_bpd": 8 * each / pixels, "mosaic_bytes": whole, "mosaic_bpd": 8 * whole / pixels}
        rows.append([f"{label}, each patch a file", "", each, 8 * each / pixels, "", "", ""])
        rows.append([f"{label}, one mosaic", "", whole, 8 * whole / pixels, "", "", ""])
    tiled = {}
    for name in args.tiled:
        tiled[name] = tiled_model_bytes(name, images)
        rows.append([f"{name} (a tiled photo model), one record", "", tiled[name], 8 * tiled[name] / pixels, "", "", ""])
    rates = product_rates(args.baseline, images[:200])
    table = markdown_table(["coder", "K", "bytes", "bpd", "-ELBO bpd", "compress img/s", "decompress img/s"], rows)
    note = (f"{source}. Conv VAE rows: one archive of the stack (`bbzip compress --no-fallback`, real bytes); speeds "
            f"through the Python API on this machine. The paper (CIFAR-10, 1000 test images): {PAPER['baseline']} / "
            f"{PAPER['rha']} bpd at K = 0, baseline / reverse half-asleep encoder.")
    speed = (f"{rates['macs_per_image'] / 1e6:.1f} M multiply-accumulates per image (encoder and decoder); the integer "
             f"networks ran at {rates['integer_macs_per_s'] / 1e9:.2f} G MAC/s, a float64 matrix product of the widest "
             f"layer's shape at {rates['float64_macs_per_s'] / 1e9:.2f} G MAC/s here.")
    path = write_results("patches-quick" if args.quick else "patches", "32x32 colour patches: the convolutional VAE",
                         [("Codelength and speed", note + "\n\n" + table), ("Products", speed)],
                         {"source": source, "vae": records, "classic": classic, "tiled_bytes": tiled, "rates": rates})
    _plot(records, path.with_suffix(".png"))
    print(table)
    print(speed)
    print(f"written to {path}")


def _plot(records, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for encoder, label in (("baseline", "baseline encoder"), ("rha", "reverse half-asleep")):
        runs = sorted((r for r in records if r["encoder"] == encoder), key=lambda r: r["k"])
        axes[0].plot([r["k"] for r in runs], [r["archive_bpd"] for r in runs], "o-", label=label)
        axes[1].plot([r["compress_ms_per_image"] for r in runs], [r["archive_bpd"] for r in runs], "o-", label=label)
    axes[0].set(title="archive bpd vs K (Fig. 7b)", xlabel="K", ylabel="bpd (real archive bytes)")
    axes[1].set(title="bpd vs compression time (Fig. 8b)", xlabel="ms per image (compress)", ylabel="bpd")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
