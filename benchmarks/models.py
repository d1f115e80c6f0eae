"""The shipped models on the 10k MNIST test set: -ELBO and IWAE bpd beside the paper's figures.

    python -m benchmarks.models [--quick] [--iwae 50]

For each shipped model: test -ELBO (10 posterior samples, seed 0) and the importance-weighted
bound (k samples), in bits per dimension. Baseline and reverse half-asleep share one decoder, so
their difference is the encoder's alone. --quick uses 500 test images and k = 5.
"""
from __future__ import annotations

import argparse

from bbzip.models.data import load_named
from bbzip.models.evaluate import elbo_bpd, iwae_bpd
from bbzip.models.shipped import manifest
from bbzip.models.weights import load_shipped

from .common import markdown_table, write_results

SHIPPED = [("binary", "binary-mnist", "baseline", "mlp-binary-mnist-baseline"),
           ("binary", "binary-mnist", "reverse half-asleep", "mlp-binary-mnist-rha"),
           ("grey", "mnist", "baseline", "mlp-mnist-baseline"),
           ("grey", "mnist", "reverse half-asleep", "mlp-mnist-rha")]
# ANCHORS.md: the compression models (latent 10, VAE trained 100 epochs), bits-back bpd on the
# first 1000 test images; and Table 1 (VAE trained 1000 epochs), test -ELBO.
PAPER_COMPRESSION = {("binary", "baseline"): 0.1854, ("binary", "reverse half-asleep"): 0.1789,
                     ("grey", "baseline"): 1.562, ("grey", "reverse half-asleep"): 1.552}
PAPER_TABLE1 = {("binary", "baseline"): 0.200, ("binary", "reverse half-asleep"): 0.187,
                ("grey", "baseline"): 1.543, ("grey", "reverse half-asleep"): 1.513}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 test images, IWAE k = 5")
    parser.add_argument("--iwae", type=int, default=50, help="IWAE samples (default 50)")
    args = parser.parse_args()
    k = 5 if args.quick else args.iwae
    rows, records = [], []
    for data, dataset, encoder, name in SHIPPED:
        model, metadata = load_shipped(name)
        images = load_named(dataset, "test")[: 500 if args.quick else None]
        record = {"data": data, "encoder": encoder, "model": name, "images": len(images),
                  "elbo_bpd": elbo_bpd(model, images, samples=10, seed=0), "iwae_bpd": iwae_bpd(model, images, k=k, seed=0),
                  "epochs": metadata.get("epochs"), "command": manifest()[name]["command"]}
        records.append(record)
        rows.append([data, encoder, name, record["elbo_bpd"], record["iwae_bpd"],
                     PAPER_COMPRESSION[(data, encoder)], PAPER_TABLE1[(data, encoder)]])
        print(rows[-1], flush=True)
    table = markdown_table(["data", "encoder", "model", "test -ELBO bpd", f"IWAE k={k} bpd",
                            "paper, compression models (bits-back bpd)", "paper Table 1 (-ELBO, 1000 epochs)"], rows)
    note = (f"{records[0]['images']} test images; -ELBO averaged over 10 posterior samples; IWAE with k={k}. "
            "The commands that made each model are in `models/weights/manifest.json`.")
    path = write_results("models-quick" if args.quick else "models", "Shipped models on the MNIST test set",
                         [("Test bpd", note + "\n\n" + table)], {"models": records})
    print(table)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
