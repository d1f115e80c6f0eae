"""How the models code images they were not trained on: the MLP VAE beside the local
autoregressive VAE (issue 11), real archive bytes.

    python -m benchmarks.generalisation [--quick] [--images N]

Sets (the first N test images of each, default 1,000): MNIST itself; the fixed binarised MNIST
of Larochelle & Murray (another binarisation than the x >= 128 the binary models saw; as 0/255
for the grey models); and MNIST inverted, rotated by 90 degrees and shifted by 6 pixels
(benchmarks.unlike_mnist). Each set is one .npy coded by `bbzip compress --no-fallback` (every
image by the model, so this measures the model, not the classic fallback) at K=0.
--quick: 100 images.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bbzip.cli.main import cli
from bbzip.models.data import data_dir
from bbzip.models.shipped import manifest

from .common import markdown_table, write_results
from .unlike_mnist import image_sets

MODELS = {"binary": ["mlp-binary-mnist-rha", "ar-binary-mnist-baseline", "ar-binary-mnist-rha"],
          "grey": ["mlp-mnist-rha", "ar-mnist-baseline", "ar-mnist-rha"]}
SETS = ("mnist", "larochelle", "inverted", "rotated", "shifted")


def larochelle(count: int) -> np.ndarray:
    with np.load(data_dir() / "binarized_mnist" / "binarized_mnist.npz") as arrays:
        return arrays["x_test"][:count].astype(np.uint8)


def sets_for(kind: str, count: int) -> dict[str, np.ndarray]:
    found = image_sets(kind == "binary", count)
    found["larochelle"] = larochelle(count) * np.uint8(1 if kind == "binary" else 255)
    return {name: found[name] for name in SETS}


def archive_bpd(images: np.ndarray, model: str, folder: Path) -> tuple[int, float]:
    np.save(folder / "set.npy", images)
    cli(["-q", "compress", str(folder / "set.npy"), "-o", str(folder / "set.bb"), "-f", "--model", model, "--no-fallback"],
        standalone_mode=False)
    size = (folder / "set.bb").stat().st_size
    return size, 8 * size / images.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 images a set")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    count = 100 if args.quick else args.images
    shipped = manifest()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, models in MODELS.items():
            sets = sets_for(kind, count)
            for model in (m for m in models if m in shipped):
                for name, images in sets.items():
                    size, bpd = archive_bpd(images, model, Path(tmp))
                    rows.append([kind, model, name, len(images), size, bpd])
                    records.append({"kind": kind, "model": model, "set": name, "images": len(images), "archive_bytes": size,
                                    "archive_bpd": bpd})
                    print(*rows[-1], flush=True)
    table = markdown_table(["images", "model", "set", "n", "archive bytes", "archive bpd"], rows)
    name = "generalisation-quick" if args.quick else "generalisation"
    path = write_results(name, "Rates on images the models were not trained on", [("Archive bpd, K=0, no fallback", table)],
                         {"runs": records})
    print(table)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
