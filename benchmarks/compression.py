"""bbzip on the MNIST test set: real archive bpd vs -ELBO, and speed, over K (paper Figs. 7, 8).

    python -m benchmarks.compression [--quick] [--data binary grey] [--k 0 1 2 3 5 7 10]

For each data set, encoder (baseline, reverse half-asleep) and K, the 10k test images go
through the same path as `bbzip compress` (one .npy entry, archive written in memory) and back
through `bbzip decompress`'s path; the decoded pixels are checked against the input. Reported:
archive bytes and bpd (8 x bytes / pixels), the -ELBO estimate of the same posteriors, their
gap, compress and decompress images/s (this machine, one thread for the model), and the
paper's figure where it has one. --quick uses 300 images.
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

from cli import coding
from cli.archive import read_archive, write_archive
from cli.entries import read_entry
from models.data import load_named
from models.inference import optimise_posterior, single_thread
from models.objectives import negative_elbo_from

from .common import markdown_table, write_results

MODELS = {
    "binary": ("binary-mnist", "mlp-binary-mnist-baseline", "mlp-binary-mnist-rha"),
    "grey": ("mnist", "mlp-mnist-baseline", "mlp-mnist-rha"),
}
# ANCHORS.md, Section 5 / Figure 8 (first 1000 test images, stack growth without initial bits).
PAPER = {
    ("binary", "baseline", 0): 0.1854, ("binary", "rha", 0): 0.1789,
    ("binary", "baseline", 10): 0.1769, ("binary", "rha", 10): 0.1725,
    ("grey", "baseline", 0): 1.562, ("grey", "rha", 0): 1.552,
    ("grey", "baseline", 10): 1.544, ("grey", "rha", 10): 1.537,
}


def elbo_estimate_bpd(model, images: np.ndarray, settings, samples: int = 4) -> float:
    """-ELBO (bits/dim) of the posteriors the coder uses: same batches, same K-step seeds."""
    from cli.model_stream import batch_seed, coding_batches

    total, generator = 0.0, torch.Generator().manual_seed(0)
    for index, lo, hi in coding_batches(len(images), settings.batch_size):
        batch = images[lo:hi]
        mean, raw = optimise_posterior(model, batch, settings.k_steps, settings.lr, batch_seed(settings.seed, index))
        x = torch.from_numpy(np.ascontiguousarray(batch))
        with torch.no_grad(), single_thread():
            total += sum(negative_elbo_from(model, x, mean, raw, generator).sum().item() for _ in range(samples)) / samples
    return total / (len(images) * model.config.pixels * math.log(2))


def run_one(choice, images: np.ndarray, k: int, folder: Path, repeats: int) -> dict:
    """Compress and decompress `repeats` times (the same bytes each time); the best time counts."""
    path = folder / "test.npy"
    np.save(path, images)
    settings = coding.settings_for(choice.model, k, 5e-3, 0, None, len(images))
    compress_s = decompress_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        entry = read_entry("test.npy", path, coding.fits(choice.model.config))
        header, payload = coding.build([entry], choice, settings)
        archive_bytes = write_archive(header, payload)
        compress_s = min(compress_s, time.perf_counter() - start)
        start = time.perf_counter()
        files = coding.extract(read_archive(archive_bytes), choice)
        decompress_s = min(decompress_s, time.perf_counter() - start)
        restored = np.load(io.BytesIO(files[0][1]))
        assert np.array_equal(restored, images), "round trip failed"
    pixels = images.size
    stream = header["model_stream"]["length"]
    elbo = elbo_estimate_bpd(choice.model, images, settings)
    archive_bpd = 8 * len(archive_bytes) / pixels
    return {
        "archive_bytes": len(archive_bytes), "stream_bytes": stream, "archive_bpd": archive_bpd,
        "elbo_bpd": elbo, "gap_percent": 100 * (archive_bpd / elbo - 1), "compress_images_per_s": len(images) / compress_s,
        "decompress_images_per_s": len(images) / decompress_s, "compress_s_per_image": compress_s / len(images),
        "decompress_s_per_image": decompress_s / len(images), "batch_size": settings.batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 images instead of 10,000")
    parser.add_argument("--data", nargs="+", default=["binary", "grey"], choices=sorted(MODELS))
    parser.add_argument("--k", nargs="+", type=int, default=[0, 1, 2, 3, 5, 7, 10])
    parser.add_argument("--name", default=None, help="results file name (default: compression[-quick])")
    parser.add_argument("--repeats", type=int, default=2, help="timing runs per cell; the fastest counts (default 2)")
    args = parser.parse_args()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.data:
            dataset, baseline, rha = MODELS[data]
            images = load_named(dataset, "test")[: 300 if args.quick else None]
            for encoder, name in (("baseline", baseline), ("rha", rha)):
                choice = coding.load_choice(name)
                for k in args.k:
                    result = run_one(choice, images, k, Path(tmp), 1 if args.quick else args.repeats)
                    record = {"data": data, "encoder": encoder, "model": name, "k": k, "images": len(images), **result,
                              "paper_bpd": PAPER.get((data, encoder, k))}
                    records.append(record)
                    rows.append([data, encoder, k, len(images), result["archive_bytes"], result["archive_bpd"],
                                 result["elbo_bpd"], result["gap_percent"], result["compress_images_per_s"],
                                 result["decompress_images_per_s"], record["paper_bpd"]])
                    print(" ".join(str(round(v, 4) if isinstance(v, float) else v) for v in rows[-1]), flush=True)
    table = markdown_table(["data", "encoder", "K", "images", "archive bytes", "archive bpd", "-ELBO bpd", "gap %",
                            "compress img/s", "decompress img/s", "paper bpd"], rows)
    sections = [("Archive bpd vs -ELBO, and speed", table), ("Where K buys the reverse half-asleep rate", _crossover(records))]
    name = args.name or ("compression-quick" if args.quick else "compression")
    path = write_results(name, "bbzip compression on the MNIST test set", sections, {"runs": records})
    _plot(records, path.with_suffix(".png"))
    print(table)
    print(sections[1][1])
    print(f"written to {path}")


def _crossover(records) -> str:
    lines = []
    for data in sorted({r["data"] for r in records}):
        rha0 = [r for r in records if r["data"] == data and r["encoder"] == "rha" and r["k"] == 0]
        base = sorted((r for r in records if r["data"] == data and r["encoder"] == "baseline"), key=lambda r: r["k"])
        if not rha0 or not base:
            continue
        target = rha0[0]["archive_bpd"]
        reach = next((r for r in base if r["archive_bpd"] <= target), None)
        if reach is None:
            lines.append(f"- {data}: the baseline encoder does not reach the reverse half-asleep K=0 rate "
                         f"({target:.4f} bpd) within K <= {base[-1]['k']}.")
        else:
            extra = 100 * (reach["compress_s_per_image"] / rha0[0]["compress_s_per_image"] - 1)
            lines.append(f"- {data}: the baseline encoder needs K={reach['k']} to reach the reverse half-asleep K=0 rate "
                         f"({target:.4f} bpd), costing {extra:.0f}% more compression time (paper, binary: K=7, +117%).")
    return "\n".join(lines) or "(not enough runs)"


def _plot(records, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    datasets = sorted({r["data"] for r in records})
    fig, axes = plt.subplots(2, len(datasets), figsize=(5 * len(datasets), 7), squeeze=False)
    for col, data in enumerate(datasets):
        for encoder, label in (("baseline", "baseline encoder"), ("rha", "reverse half-asleep")):
            runs = sorted((r for r in records if r["data"] == data and r["encoder"] == encoder), key=lambda r: r["k"])
            axes[0][col].plot([r["k"] for r in runs], [r["archive_bpd"] for r in runs], "o-", label=label)
            axes[1][col].plot([1e3 * r["compress_s_per_image"] for r in runs], [r["archive_bpd"] for r in runs], "o-", label=label)
        axes[0][col].set(title=f"{data} MNIST: archive bpd vs K", xlabel="K (optimisation steps)", ylabel="bpd (real archive bytes)")
        axes[1][col].set(title=f"{data} MNIST: bpd vs compression time", xlabel="ms per image (compress)", ylabel="bpd")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
