"""Each benchmark's --quick mode runs end to end and writes its markdown and JSON results.

Smoke tests only: they check that the scripts run and record real numbers, never a timing.
They take minutes together, so they are behind the `smoke` marker (`pytest -m smoke`), which
.ci/run runs after the default suite.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke


REPO = Path(__file__).resolve().parent.parent


def run_benchmark(tmp_path, module, *args):
    env = dict(os.environ, BBZIP_RESULTS_DIR=str(tmp_path))
    subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--quick", *args], cwd=REPO, env=env, check=True,
                   capture_output=True, text=True, timeout=600)
    return {p.name: p for p in tmp_path.iterdir()}


def test_engine_quick(tmp_path):
    files = run_benchmark(tmp_path, "engine")
    data = json.loads(files["engine-quick.json"].read_text())
    cases = {row[0] for row in data["throughput"]}
    assert {"raw push/pop", "shared 256-symbol table"} <= cases
    # Real bytes, never below the information content, and within 2% of it (+ the final heads).
    for case, _, ideal_bytes, actual_bytes, *_ in data["overhead"]:
        assert ideal_bytes <= actual_bytes <= 1.02 * ideal_bytes + 64, case


def test_classic_quick(tmp_path):
    files = run_benchmark(tmp_path, "classic")
    data = json.loads(files["classic-quick.json"].read_text())
    for label in ("grey", "binary"):
        codecs = {r["codec"]: r for r in data[label]}
        assert "PNG (optimize)" in codecs and codecs["PNG (optimize)"]["whole_set_bpd"] > 0


def test_compression_quick(tmp_path):
    files = run_benchmark(tmp_path, "compression", "--k", "0", "2")
    runs = json.loads(files["compression-quick.json"].read_text())["runs"]
    assert {(r["data"], r["encoder"], r["k"]) for r in runs} == {
        (d, e, k) for d in ("binary", "grey") for e in ("baseline", "rha") for k in (0, 2)}
    for r in runs:
        assert r["archive_bpd"] > r["elbo_bpd"] * 0.95  # real bytes, never far below the model's own bound


def test_table1_quick(tmp_path):
    model = "mlp-binary-mnist-baseline"
    files = run_benchmark(tmp_path, "table1", "--model", str(model), "--data", "binary-mnist")
    bpd = json.loads(files["table1-quick.json"].read_text())["bpd"]
    assert set(bpd) == {"VAE (alpha=0)", "denoise s=0.1", "denoise s=0.2", "denoise s=0.4", "denoise s=0.8",
                        "denoise s=1.0", "reverse half-asleep"}


def test_models_quick(tmp_path):
    files = run_benchmark(tmp_path, "models")
    records = json.loads(files["models-quick.json"].read_text())["models"]
    assert len(records) == 4
    for record in records:
        assert 0 < record["iwae_bpd"] <= record["elbo_bpd"] + 0.01


def test_archive_quick(tmp_path):
    files = run_benchmark(tmp_path, "archive")
    data = json.loads(files["archive-quick.json"].read_text())
    from benchmarks.archive import QUICK_FILES, QUICK_IMAGES

    kept = {(r["data"], r["kept_as"]): r["bytes"] for r in data["per_file"]}
    for label in ("binary", "grey"):  # a folder costs more than one array, and not 10 bytes a file more
        assert 0 < kept[(label, "bbzip, folder")] - kept[(label, "bbzip, one .npy")] < 10 * QUICK_FILES
    assert set(data["threads"]["seconds"]) == {"1", "2"} and data["memory"][0]["images"] == QUICK_IMAGES
    assert data["files_memory"][0]["files"] == QUICK_FILES and data["files_memory"][0]["compress_peak_rss_mib"] > 0


def test_generalisation_quick(tmp_path):
    """Every shipped model of the benchmark codes every set (real bytes); on MNIST itself each
    costs less than on its inverted images."""
    files = run_benchmark(tmp_path, "generalisation")
    runs = json.loads(files["generalisation-quick.json"].read_text())["runs"]
    by_model = {}
    for r in runs:
        by_model.setdefault(r["model"], {})[r["set"]] = r["archive_bpd"]
    assert {"mlp-binary-mnist-rha", "mlp-mnist-rha", "ar-mnist-baseline"} <= set(by_model)
    for model, sets in by_model.items():
        assert set(sets) == {"mnist", "larochelle", "inverted", "rotated", "shifted"}, model
        assert 0 < sets["mnist"] < sets["inverted"], model


def test_photos_quick(tmp_path):
    from bbzip.models.data import data_dir

    if not (data_dir() / "photos" / "test" / "256").is_dir():
        pytest.skip(f"the photo set is not at {data_dir() / 'photos'} (the team's ../shared/data)")
    files = run_benchmark(tmp_path, "photos")
    result = json.loads(files["photos-quick.json"].read_text())["results"][0]
    assert result["images"] == 2 and result["size"] == 256
    totals = result["totals"]
    assert {"PNG", "JPEG XL e7", "bbzip (default)", "bbzip (model only)", "bbzip folder (default)"} <= set(totals)
    for name, record in result["per_image"].items():  # the default never costs more than the model alone
        assert record["bbzip (default)"] <= record["bbzip (model only)"] + 64, name
    assert 0 < totals["bbzip folder (default)"]["bpd"] < totals["PNG"]["bpd"]


def test_patches_quick(tmp_path):
    """The convolutional VAE on 100 photo patches: real archive bytes at K 0 and 2 for both
    encoders, the classic codecs and the tiled model on the same patches."""
    from bbzip.models.data import data_dir

    if not (data_dir() / "photos" / "test").is_dir():
        pytest.skip(f"the photo set is not at {data_dir() / 'photos'} (the team's ../shared/data)")
    files = run_benchmark(tmp_path, "patches")
    data = json.loads(files["patches-quick.json"].read_text())
    assert {(r["encoder"], r["k"]) for r in data["vae"]} == {(e, k) for e in ("baseline", "rha") for k in (0, 2)}
    for r in data["vae"]:
        assert r["archive_bpd"] > 0.95 * r["elbo_bpd"]  # real bytes, never far below the model's own bound
    assert {"PNG", "WebP lossless", "JPEG XL e7"} <= set(data["classic"]) and data["tiled_bytes"]["tiled-rgb-photos"] > 0


def test_cluster_quick(tmp_path):
    """-T 1, -T 2 and a local Dask cluster of 1 and 2 workers write the same archive (the
    benchmark fails otherwise) and each restores the input."""
    pytest.importorskip("distributed", reason="the cluster extra (Dask) is not installed")
    files = run_benchmark(tmp_path, "cluster")
    runs = json.loads(files["cluster-quick.json"].read_text())["runs"]
    assert [r["setup"] for r in runs] == ["-T 1", "-T 2", "cluster, 1 worker", "cluster, 2 workers"]
    assert len({r["archive_bytes"] for r in runs}) == 1 and runs[0]["archive_bytes"] > 0


def test_the_cluster_s_lag_on_the_main_job_is_taken_by_best_and_by_median_runs():
    from benchmarks.cluster import cluster_behind

    runs = [("-T 2", 10.0, 8.0), ("cluster, 2 workers", 12.0, 8.0), ("-T 2", 14.0, 9.0),
            ("cluster, 2 workers", 11.5, 10.0), ("-T 2", 11.0, 10.0), ("cluster, 2 workers", 13.0, 9.0)]
    behind = cluster_behind([{"setup": setup, "compress_s": c, "decompress_s": d} for setup, c, d in runs])
    assert behind["compress", "best"] == pytest.approx(0.15) and behind["compress", "median"] == pytest.approx(12 / 11 - 1)
    assert behind["decompress", "best"] == pytest.approx(0.0) and behind["decompress", "median"] == pytest.approx(0.0)


def test_one_entry_quick(tmp_path):
    """Each of a stored file, a digit and a photo out of the archive, locally and through fsspec
    (the benchmark fails unless the two images are model entries and each comes back alone)."""
    pytest.importorskip("distributed", reason="the cluster extra (Dask) is not installed")
    files = run_benchmark(tmp_path, "one_entry")
    runs = json.loads(files["one-entry-quick.json"].read_text())["runs"]
    assert len(runs) == 6 and {r["source"] for r in runs} == {"local file", "blockcache::file://"}
    assert all(r["archive_bytes"] > 4 << 20 and r["decompress_one_s"] > 0 for r in runs)


def test_speed_quick(tmp_path):
    files = run_benchmark(tmp_path, "speed")
    data = json.loads(files["speed-quick.json"].read_text())
    jobs = {job["job"]: job for job in data["jobs"]}
    assert {"1,000 grey MNIST PNGs", "200 binary PNGs, --k-steps 10", "200 grey PNGs, noisy"} <= set(jobs)
    assert all(job["bytes"] > 0 and job["compress_s"] > 0 for job in jobs.values())
    # K steps buy bytes of the model stream on the same images
    assert jobs["200 binary PNGs, --k-steps 10"]["stream_bytes"] <= jobs["200 binary PNGs, --k-steps 0"]["stream_bytes"]
