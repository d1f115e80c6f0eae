"""Paper Table 1 (binary MNIST row): test -ELBO of one decoder with encoders trained differently.

    python -m benchmarks.table1 --model NAME-OR-FILE [--epochs 5] [--data binary-mnist | photo-patches] [--quick]

From the same trained VAE, each column fine-tunes a fresh copy of the encoder (decoder frozen)
for the same number of epochs: ordinary amortised training (alpha = 0), the denoising
regulariser of Shu et al. with sigma in {0.1, 0.2, 0.4, 0.8, 1.0} (weight 0.5), and reverse
half-asleep (alpha = 0.5). Then test -ELBO bpd (10 posterior samples, seed 0) on the 10k test
images. The paper ran 100 epochs of encoder training after 1000 of VAE training; the epochs
used here are in the results file.

`--data photo-patches` is the CIFAR-10 row's stand-in (CIFAR cannot be had here): 32 x 32
patches of the photos, 32768 of train/ to fine-tune on and 1000 of test/ to test on (seed 0, as
`bbzip train --patch 32` and benchmarks.patches draw them), for the convolutional VAE.
"""
from __future__ import annotations

import argparse
import copy

from bbzip.models.data import data_dir, load_named
from bbzip.models.evaluate import elbo_bpd
from bbzip.models.train import train_encoder
from bbzip.models.weights import load_trained

from .common import markdown_table, write_results

PATCH_COUNTS = {"train": 32768, "test": 1000}
PAPER = {"binary-mnist": {"VAE (alpha=0)": 0.200, "denoise s=0.1": 0.195, "denoise s=0.2": 0.192, "denoise s=0.4": 0.191,
                          "denoise s=0.8": 0.196, "denoise s=1.0": 0.201, "reverse half-asleep": 0.187},
         # the paper's CIFAR-10 row, beside the photo patches that stand in for CIFAR here
         "photo-patches": {"VAE (alpha=0)": 4.592, "denoise s=0.1": 4.591, "denoise s=0.2": 4.598, "denoise s=0.4": 4.614,
                           "denoise s=0.8": 4.651, "denoise s=1.0": 4.667, "reverse half-asleep": 4.572}}


def columns(samples_from: str = "prior"):
    yield "VAE (alpha=0)", {"objective": "reverse-half-asleep", "alpha": 0.0}
    for sigma in (0.1, 0.2, 0.4, 0.8, 1.0):
        yield f"denoise s={sigma}", {"objective": "denoise", "sigma": sigma}
    yield "reverse half-asleep", {"objective": "reverse-half-asleep", "alpha": 0.5, "samples_from": samples_from}


def _data(name: str, split: str):
    if name != "photo-patches":
        return load_named(name, split)
    from bbzip.models.patches import folder_images, random_patches

    return random_patches(folder_images(data_dir() / "photos" / split, 3), 32, PATCH_COUNTS[split], 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the trained VAE: a shipped name or a .safetensors file")
    parser.add_argument("--data", default="binary-mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1000 training images, 1 epoch, 1000 test images")
    parser.add_argument("--samples-from", choices=["prior", "aggregate"], default="prior",
                        help="reverse half-asleep's model samples (aggregate: the paper's CIFAR protocol)")
    parser.add_argument("--train-images", type=int, help="fine-tune on the first N training images only")
    parser.add_argument("--lr", type=float, default=3e-4, help="encoder learning rate (default 3e-4, the paper's)")
    args = parser.parse_args()
    base, metadata = load_trained(args.model)
    train, test = (_data(args.data, split)[: 1000 if args.quick else None] for split in ("train", "test"))
    train = train[: args.train_images]
    epochs = 1 if args.quick else args.epochs
    rows, data = [["as trained (no encoder fine-tuning)", elbo_bpd(base, test), None]], {}
    print(rows[0], flush=True)
    for label, options in columns(args.samples_from):
        model = copy.deepcopy(base)
        train_encoder(model, train, epochs=epochs, lr=args.lr, batch_size=100, seed=0, **options)
        bpd = elbo_bpd(model, test)
        data[label] = bpd
        rows.append([label, bpd, PAPER.get(args.data, {}).get(label)])
        print(rows[-1], flush=True)
    table = markdown_table(["encoder", "test -ELBO bpd", "paper (its CIFAR-10 row for photo patches)"], rows)
    note = (f"Decoder: `{args.model}` (made by `{metadata.get('command', '?')}`). Encoder fine-tuning: {epochs} epochs, "
            f"Adam lr {args.lr:g}, batch 100, seed 0, on {len(train)} training images; test: {len(test)} images; "
            f"reverse half-asleep's samples from the {args.samples_from}.")
    name = "table1" + ("" if args.data == "binary-mnist" else f"-{args.data}") + ("-quick" if args.quick else "")
    path = write_results(name, f"Paper Table 1 on {args.data}",
                         [("Test -ELBO", note + "\n\n" + table)],
                         {"epochs": epochs, "model": args.model, "bpd": data, "as_trained": rows[0][1]})
    print(table)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
