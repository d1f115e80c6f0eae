"""Golden archives: bytes this version of bbzip wrote, committed under tests/golden/.

A fresh compress of the same images must give the same bytes (the coding path is exact and
deterministic), and the committed archives must decode to the committed pixels. When the format
or the numerics change on purpose, regenerate them with

    BBZIP_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

and say why in the commit (old archives of the previous version then need its bbzip).
"""
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bbzip.cli.main import cli

GOLDEN = Path(__file__).parent / "golden"
# (images, K, images per block, model): "grey-k0-blocks" cuts the stream into 3 blocks of 16.
# The MLP VAE's cases name their model (it was the default when they were written), as do the
# tiled photo model's (the default for RGB until its mixture-large took over); the local
# autoregressive ones use today's default.
MLP = {"binary": "mlp-binary-mnist-rha", "grey": "mlp-mnist-rha"}
CASES = {"binary-k0": ("binary", 0, None, MLP["binary"]), "grey-k0": ("grey", 0, None, MLP["grey"]),
         "grey-k2": ("grey", 2, None, MLP["grey"]), "grey-k0-blocks": ("grey", 0, 16, MLP["grey"]),
         "ar-binary-k0": ("binary", 0, None, None), "ar-grey-k2": ("grey", 2, None, None),
         "ar-binary-k2": ("binary", 2, None, None),
         "photo-k0": ("photo", 0, None, "tiled-rgb-photos"), "photo-mixture-k0": ("photo", 0, None, "tiled-rgb-photos-mixture"),
         "photo-mixture-large-k0": ("photo", 0, None, "tiled-rgb-photos-mixture-large"),
         "patches-k0": ("patches", 0, None, "conv-photo-patches-rha"),
         "patches-k2": ("patches", 2, None, "conv-photo-patches-rha"), "rgba-k0": ("rgba", 0, None, "tiled-rgb-photos"),
         "grey-photo-mixture-large-k0": ("grey-photo", 0, None, "tiled-grey-photos-mixture-large")}
# "ar-binary-k2" was written at 87e49c8, before K-step inference's head took one output's
# backward pass as an outer product and summed each pixel's context once for all steps.
# The convolutional VAE's cases: 12 colour patches of 32x32 (an array; it was the default for
# them until the tiled photo model took arrays) with the fallback, and through it alone at K=2.
# "photo-k0" too: alone, its crop costs less as JPEG XL than as a model stream with its framing
# (cli/fallback.py: _stream_bytes), and the case pins the model's coding.
NO_FALLBACK = {"patches-k2", "rgba-k0", "grey-photo-mixture-large-k0", "photo-k0"}
# The colour case: a 70x50 RGB crop of a sample photo (an image file, coded in tiles by the
# tiled photo model (the first default for RGB images of any size), by the tiled model with a mixture of logistics, and
# by the one with a mixture and a wider window in tiles of 256).
# The RGBA case: a stack of three 40x50 RGBA crops of a sample photo (an array: its colour to the
# tiled photo model, its alpha planes, transparent, half and opaque, as the entry's xz blob).
# The grey photo case: the colour case's crop made grey, through the grey mixture-large model.
SOURCES = {"binary": "binary.npy", "grey": "grey.npy", "photo": "photo.png", "patches": "patches.npy", "rgba": "rgba.npy",
           "grey-photo": "grey-photo.png"}
UPDATE = os.environ.get("BBZIP_UPDATE_GOLDEN") == "1"


def _write_source(kind: str, grey_test_images) -> None:
    if kind == "patches":
        from bbzip.models.patches import folder_images, random_patches

        photos = folder_images(Path(__file__).parents[1] / "samples" / "photos", 3)
        np.save(GOLDEN / SOURCES[kind], random_patches(photos, 32, 12, 0))
        return
    if kind in ("photo", "grey-photo"):
        with Image.open(Path(__file__).parents[1] / "samples" / "photos" / "e_red-maple.png") as photo:
            crop = Image.fromarray(np.asarray(photo)[100:150, 200:270])
            (crop if kind == "photo" else crop.convert("L")).save(GOLDEN / SOURCES[kind])
        return
    if kind == "rgba":
        with Image.open(Path(__file__).parents[1] / "samples" / "photos" / "e_foggy-trees.png") as photo:
            colour = np.stack([np.asarray(photo.convert("RGB"))[row : row + 40, 100:150] for row in (20, 90, 160)])
        alpha = np.full(colour.shape[:3] + (1,), 255, dtype=np.uint8)
        alpha[:, :10], alpha[:, 10:20] = 0, 128
        np.save(GOLDEN / SOURCES[kind], np.concatenate([colour, alpha], axis=-1))
        return
    images = grey_test_images[:48]
    np.save(GOLDEN / SOURCES[kind], (images >= 128).astype(np.uint8) if kind == "binary" else images)


def _same_content(kind: str, restored: Path) -> None:
    if kind in ("photo", "grey-photo"):
        with Image.open(restored) as a, Image.open(GOLDEN / SOURCES[kind]) as b:
            assert a.mode == b.mode == ("RGB" if kind == "photo" else "L") and np.array_equal(np.asarray(a), np.asarray(b))
    else:
        np.testing.assert_array_equal(np.load(restored), np.load(GOLDEN / SOURCES[kind]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_fresh_compress_gives_the_golden_bytes(tmp_path, grey_test_images, case):
    kind, k_steps, block_images, model = CASES[case]
    source = GOLDEN / SOURCES[kind]
    if UPDATE:
        _write_source(kind, grey_test_images)
    # Archives keep the file's permission bits and mtime: pin them, a checkout sets its own.
    pinned = tmp_path / source.name
    pinned.write_bytes(source.read_bytes())
    pinned.chmod(0o644)
    os.utime(pinned, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    archive = tmp_path / "fresh.bb"
    blocks = ["--block-images", str(block_images)] if block_images else []
    chosen = ["--model", model] if model else []
    chosen += ["--no-fallback"] if case in NO_FALLBACK else []
    result = CliRunner().invoke(cli, ["-q", "compress", str(pinned), "-o", str(archive), "--k-steps", str(k_steps), *blocks,
                                      *chosen])
    assert result.exit_code == 0, result.output
    if UPDATE:
        (GOLDEN / f"{case}.bb").write_bytes(archive.read_bytes())
    assert archive.read_bytes() == (GOLDEN / f"{case}.bb").read_bytes()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_golden_archives_decode(tmp_path, case):
    kind = CASES[case][0]
    result = CliRunner().invoke(cli, ["-q", "decompress", str(GOLDEN / f"{case}.bb"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    _same_content(kind, tmp_path / SOURCES[kind])


@pytest.mark.parametrize("case", ["grey-k0-blocks", "photo-k0", "patches-k0"])
def test_format_6_archives_still_decode(tmp_path, case):
    """Format 7 deflates small tables and the model stream's header with preset dictionaries:
    archives the previous bbzip wrote (tests/golden/format6-*.bb, committed before the change:
    tables in LZMA without a codec byte, headers without a dictionary) open."""
    kind = CASES[case][0]
    result = CliRunner().invoke(cli, ["-q", "decompress", str(GOLDEN / f"format6-{case}.bb"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    _same_content(kind, tmp_path / SOURCES[kind])


@pytest.mark.parametrize("case", ["grey-k0-blocks", "photo-k0"])
def test_format_5_archives_still_decode(tmp_path, case):
    """Format 6 added the archive's digest and block digests that bind their index: archives
    the previous bbzip wrote (tests/golden/format5-*.bb, committed before the change: three
    blocks of digests without their index, a tiled photo) open, without those checks."""
    kind = CASES[case][0]
    result = CliRunner().invoke(cli, ["-q", "decompress", str(GOLDEN / f"format5-{case}.bb"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    _same_content(kind, tmp_path / SOURCES[kind])


def test_format_4_archives_still_decode(tmp_path):
    """Format 5 only added to format 4 (the fallback, JPEG XL, transcodes): an archive the
    previous bbzip wrote (tests/golden/format4-grey-k0.bb, committed before the change) opens."""
    result = CliRunner().invoke(cli, ["-q", "decompress", str(GOLDEN / "format4-grey-k0.bb"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "grey.npy"), np.load(GOLDEN / "grey.npy"))
