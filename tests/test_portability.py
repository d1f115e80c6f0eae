"""Archives decode on every machine, bit for bit (the exactness contract).

`../shared/tools/other-machines` runs a command under other SIMD paths, MKL and OpenBLAS code
paths and thread counts. Thirteen archives (with the MLP VAEs: binary K=0, grey K=0, grey K=10,
grey K=2 in blocks of 64 images coded by two processes, -T 2; with the default local
autoregressive VAEs: a grey stack with images unlike MNIST that the classic fallback keeps as
PNG, WebP and JPEG XL, binary K=0, grey K=0 in blocks on two processes, grey K=3; an RGB photo crop
through the default for RGB, tiled-rgb-photos-mixture-large (one tile of 256, coded as its top-left
square), and through tiled-rgb-photos-mixture in 2x2 tiles of 128, the last ones partly outside it;
40 colour patches of 32x32
through the convolutional VAE at K=0, and at K=3 in blocks on two processes, and through
tiled-rgb-photos, whose blocks of images smaller than its tiles code the tiles' top-left
square on that square's own wavefront) written in the default
environment must decode
under every variant, and every variant must write byte-identical archives from the same images,
which therefore decode in the default environment too.

Slow (about six minutes here: two runs of bbzip per variant, the writes two variants at a time);
`.ci/run` runs it. Checked once by
breaking the guarantee the way bbzip 0.1 coded: with IntegerLayer.forward computing float32
products of real-valued weights, both tests failed (openblas-nehalem and oldest-x86 could not
decode, and wrote other bytes). With float64 products of real weights they still passed: such
differences (~1e-16) rarely reach a requantisation boundary in 200 images, which is why the
contract is proved by the integer bounds (integer_mlp.check_bounds), not by this test alone.
"""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bbzip.models.patches import folder_images, random_patches

pytestmark = pytest.mark.slow

TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "other-machines"
# (images, K, -T, model: "" for the shipped default, the local autoregressive VAE)
MLP_BINARY, MLP_GREY = "mlp-binary-mnist-rha", "mlp-mnist-rha"
CONV = "conv-photo-patches-rha"  # the convolutional VAE, on 32x32 colour patches of the sample photos
MIXTURE = "tiled-rgb-photos-mixture"  # the tiled photo model with a mixture of logistics per channel
TILED = "tiled-rgb-photos"  # the colour patches through it: images smaller than a tile code as its top-left square
CASES = [("binary", 0, "1", MLP_BINARY), ("grey", 0, "1", MLP_GREY), ("grey", 10, "1", MLP_GREY), ("grey", 2, "2", MLP_GREY),
         ("mixed", 0, "1", ""), ("binary", 0, "1", ""), ("grey", 0, "2", ""), ("grey", 3, "1", ""),
         ("photo", 0, "1", ""), ("photo", 0, "1", MIXTURE), ("patches", 0, "1", CONV), ("patches", 3, "2", CONV),
         ("patches", 0, "1", TILED)]
KINDS = ("grey", "binary", "mixed", "photo", "patches")
# The colour case: a 150x140 RGB crop of a sample photo through the shipped default for RGB
# images (no fallback; tiled-rgb-photos-mixture-large: the square of one tile of 256) and
# through tiled-rgb-photos-mixture (2x2 tiles of 128), decoded in a wavefront, the pixels
# outside the crop not coded, on every variant.
SOURCES = {kind: f"{kind}.npy" for kind in KINDS} | {"photo": "photo.png"}

WRITE = """
import hashlib, sys
from bbzip.cli.main import cli
folder = sys.argv[1]
for kind, k, threads, model in %r:
    out = f"{folder}/written-{kind}-{k}{model}.bb"
    source = f"{folder}/photo.png" if kind == "photo" else f"{folder}/{kind}.npy"
    blocks = ["--block-images", "64"] if threads != "1" else []
    chosen = ["--model", model] if model else []
    chosen += ["--no-fallback"] if kind in ("photo", "patches") else []
    cli(["-q", "compress", source, "-o", out, "-f", "--k-steps", str(k), "-T", threads, *blocks, *chosen],
        standalone_mode=False)
    print(hashlib.sha256(open(out, "rb").read()).hexdigest())
""" % (CASES,)

DECODE = """
import sys
from bbzip.cli.main import cli
for archive in sys.argv[1:]:
    cli(["-q", "test", "-T", "2", archive], standalone_mode=False)
print("ok")
"""


def _pin(path: Path) -> None:
    """Archives keep a file's mode and mtime: the same for every copy of the inputs."""
    path.chmod(0o644)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))


def _variants(output: str) -> dict[str, tuple[int, str]]:
    """name -> (exit code, stdout sha1 prefix) from other-machines' report."""
    found = {}
    for match in re.finditer(r"^(\S+)\s+exit (\d+)\s+stdout sha1 (\w+)", output, re.MULTILINE):
        found[match.group(1)] = (int(match.group(2)), match.group(3))
    return found


@pytest.fixture(scope="module")
def written(tmp_path_factory, grey_test_images):
    if not TOOL.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{TOOL} is missing")
        pytest.skip("../shared/tools/other-machines is not here")
    folder = tmp_path_factory.mktemp("portability")
    images = grey_test_images[:200]
    np.save(folder / "grey.npy", images)
    np.save(folder / "binary.npy", (images >= 128).astype(np.uint8))
    rows, columns = np.mgrid[:28, :28]
    ramps = np.clip([128 + 3 * a * columns - 2 * a * rows for a in range(-3, 4)], 0, 255).astype(np.uint8)
    np.save(folder / "mixed.npy", np.concatenate([images[:100], 255 - images[100:110], ramps]))
    with Image.open(Path(__file__).parents[1] / "samples" / "photos" / "e_foggy-trees.png") as photo:
        Image.fromarray(np.asarray(photo)[60:210, 100:240]).save(folder / "photo.png")
    np.save(folder / "patches.npy", random_patches(folder_images(Path(__file__).parents[1] / "samples" / "photos", 3), 32, 40, 0))
    for kind in KINDS:
        _pin(folder / SOURCES[kind])
    run = subprocess.run([sys.executable, "-c", WRITE, str(folder)], capture_output=True, text=True, check=True)
    return folder, run.stdout


def test_archives_written_here_decode_under_every_variant(written):
    folder, _ = written
    archives = [str(folder / f"written-{kind}-{k}{model}.bb") for kind, k, _, model in CASES]
    run = subprocess.run([str(TOOL), "--", sys.executable, "-c", DECODE, *archives], capture_output=True, text=True)
    variants = _variants(run.stdout)
    assert len(variants) >= 12, run.stdout + run.stderr
    failed = {name: code for name, (code, _) in variants.items() if code != 0}
    assert not failed and run.returncode == 0, run.stdout


def test_every_variant_writes_the_same_bytes(written, tmp_path):
    """The variants run two at a time, each half in its own folder: the writes are mostly -T 1,
    so the two halves take a core each."""
    folder, expected_stdout = written
    expected = hashlib.sha1(expected_stdout.encode()).hexdigest()[:12]
    listed = subprocess.run([str(TOOL), "-l"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    runs = []
    for number, half in enumerate((names[0::2], names[1::2])):
        work = tmp_path / str(number)
        work.mkdir()
        for kind in KINDS:
            (work / SOURCES[kind]).write_bytes((folder / SOURCES[kind]).read_bytes())
            _pin(work / SOURCES[kind])
        runs.append(subprocess.Popen([str(TOOL), "-v", ",".join(half), "--", sys.executable, "-c", WRITE, str(work)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [run.communicate() for run in runs]
    variants = {name: found for stdout, _ in outputs for name, found in _variants(stdout).items()}
    report = "".join(stdout + stderr for stdout, stderr in outputs)
    assert len(variants) >= 12 and len(variants) == len(names), report
    differing = {name: sha for name, (code, sha) in variants.items() if code != 0 or sha != expected}
    assert not differing and all(run.returncode == 0 for run in runs), report
