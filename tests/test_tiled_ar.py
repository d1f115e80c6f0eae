"""The tiled local autoregressive VAE: its torch form, its integer form, and exact coding."""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bbzip.models import stream
from bbzip.models.coding_settings import CodingSettings
from bbzip.models.frozen_tiled_ar import LANE_HEAD_BITS, FrozenTiledARVAE
from bbzip.models.objectives import negative_elbo
from bbzip.models.tiled_ar import TiledARVAE
from bbzip.models.tiled_ar_config import TiledARConfig

SMALL = dict(tile=8, stride=4, hidden=16, features=2, head=8, radius=1)


def _smooth_tiles(n: int, channels: int, size: int, seed: int) -> np.ndarray:
    """Tiles a model learns something from in a few steps: gradients plus noise, channels alike."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(size), np.arange(size)) * (120 / size)
    base = ramp[None] + rng.integers(0, 100, (n, 1, 1)) + rng.normal(0, 4, (n, size, size))
    tiles = np.stack([base + 10 * c for c in range(channels)], axis=-1)
    tiles = np.clip(np.round(tiles), 0, 255).astype(np.uint8)
    return tiles if channels > 1 else tiles[..., 0]


def _trained(channels: int, latent_channels: int, mixtures: int = 1, steps: int = 30) -> TiledARVAE:
    torch.manual_seed(0)
    model = TiledARVAE(TiledARConfig(channels=channels, latent_channels=latent_channels, mixtures=mixtures, **SMALL))
    x = torch.from_numpy(_smooth_tiles(64, channels, 8, 0))
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        loss = negative_elbo(model, x).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


@pytest.fixture(scope="module", params=[(1, 2), (3, 2), (3, 0), (3, 0, 3), (1, 0, 2)],
                ids=["grey", "rgb", "rgb-no-latent", "rgb-mixture", "grey-mixture"])
def trained(request):
    return _trained(*request.param)


def test_training_lowers_the_loss(trained):
    untrained = TiledARVAE(trained.config)
    x = torch.from_numpy(_smooth_tiles(32, trained.config.channels, 8, 5))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = negative_elbo(untrained, x, generator).mean().item()
        after = negative_elbo(trained, x, generator).mean().item()
    assert after < 0.8 * before


@pytest.mark.parametrize("k_steps", [0, 2])
def test_tiles_round_trip_exactly(trained, k_steps):
    frozen = FrozenTiledARVAE.freeze(trained)
    symbols = _smooth_tiles(23, trained.config.channels, 8, 1).reshape(23, -1)
    settings = CodingSettings(k_steps=k_steps, batch_size=10)
    data = stream.encode(frozen, symbols, settings)
    assert np.array_equal(stream.decode(frozen, data, len(symbols), settings), symbols)


def test_codelength_estimate_matches_the_archive(trained):
    frozen = FrozenTiledARVAE.freeze(trained)
    symbols = _smooth_tiles(200, trained.config.channels, 8, 2).reshape(200, -1)
    settings = CodingSettings(batch_size=100)
    actual = 8 * len(stream.encode(frozen, symbols, settings))
    estimate = frozen.codelength_bits(symbols, settings).sum()
    # The estimate counts a final head on each tile's lanes; batches share lanes, so the archive
    # can pay up to that much less (a grey tile of 8 codes in a few hundred bits, 20 of them heads).
    shared_heads = LANE_HEAD_BITS * frozen.lanes_per_unit * len(symbols) if not frozen.has_latent else 0
    assert -0.03 * actual - 512 < estimate - actual < 0.03 * actual + 512 + shared_heads


def test_integer_parameters_follow_the_float_model(trained):
    """The frozen head gives the float head's parameters to within quantisation."""
    frozen = FrozenTiledARVAE.freeze(trained)
    c = trained.config
    tiles = _smooth_tiles(4, c.channels, 8, 3)
    z = torch.zeros((4, c.latent))
    with torch.no_grad():
        expected = trained.pixel_params(torch.from_numpy(tiles), trained.likelihood_params(z)["features"])
    symbols = tiles.reshape(4, -1).astype(np.int64)
    params, reference = frozen._parameters(symbols, frozen.features(np.zeros((4, c.latent), dtype=np.int64)))
    red_mean = frozen._effective(params, reference, symbols.reshape(reference.shape))[0][..., 0, :] / 4096.0
    expected_red = expected["mean"].reshape(4, c.pixels, c.channels, c.mixtures)[..., 0, :].numpy()
    assert np.abs(red_mean - expected_red).max() < 0.5


def test_refreezing_the_float_state_gives_the_same_integers(trained):
    frozen = FrozenTiledARVAE.freeze(trained)
    again = TiledARVAE(trained.config)
    again.load_state_dict({name: torch.from_numpy(value) for name, value in frozen.float_state().items()})
    tensors, _ = FrozenTiledARVAE.freeze(again).to_tensors()
    for name, value in frozen.to_tensors()[0].items():
        assert np.array_equal(tensors[name], value), name


def test_config_is_checked():
    with pytest.raises(ValueError, match="multiple of stride"):
        TiledARConfig(tile=30, stride=4)
    with pytest.raises(ValueError, match="channels"):
        TiledARConfig(channels=2)


@pytest.fixture(scope="module")
def rgb_model_file(tmp_path_factory):
    from bbzip.models.architectures import save_frozen

    path = tmp_path_factory.mktemp("tiled") / "rgb.safetensors"
    save_frozen(FrozenTiledARVAE.freeze(_trained(3, 0)), path)
    return path


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (3, 13, 21, 3), (1, 1, 30, 3)], ids=["whole-tiles", "edges", "one-row"])
def test_images_of_any_size_round_trip_through_the_api(rgb_model_file, shape):
    from bbzip.models import api

    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    data = api.compress(images, model=str(rgb_model_file))
    assert api.read_record(data).image_shape == shape[1:3]
    assert np.array_equal(api.decompress(data, model=str(rgb_model_file)), images)


def test_a_record_whose_tiles_do_not_fit_its_image_shape_is_refused(rgb_model_file):
    import struct
    import zlib

    from bbzip.models import api

    data = api.compress(np.zeros((1, 13, 21, 3), dtype=np.uint8), model=str(rgb_model_file))
    start = len(api.MAGIC)
    (length,) = struct.unpack_from("<I", data, start)
    header = api.inflate_header(data[start + 4 : start + 4 + length])
    header["image_shape"] = [13, 9]  # 2 x 2 tiles where the record holds 2 x 3
    forged = api.deflate_header(header)
    data = data[:start] + struct.pack("<I", len(forged)) + forged + struct.pack("<I", zlib.crc32(forged)) + \
        data[start + 8 + length :]
    with pytest.raises(api.StreamError, match="tile count"):
        api.read_record(data)


def test_tiles_are_cut_and_joined_back():
    from bbzip.models.tiling import from_tiles, to_tiles

    image = np.arange(13 * 21 * 3, dtype=np.int64).reshape(13, 21, 3)
    tiles = to_tiles(image, 8)
    assert tiles.shape == (2 * 3, 8, 8, 3)
    assert np.array_equal(tiles[1, :, :, 0], image[:8, 8:16, 0])
    assert np.array_equal(tiles[5, -1, -1], image[-1, -1])  # the extension repeats the last row and column
    assert np.array_equal(from_tiles(tiles, 13, 21), image)


def _bbzip(*args) -> str:
    """bbzip's output for these arguments, which it must run without an error."""
    from click.testing import CliRunner

    from bbzip.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _photo_folder(folder):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(_smooth_tiles(1, 3, 24, 4)[0][:19]).save(folder / "small.png")
    Image.fromarray(np.ascontiguousarray(_smooth_tiles(1, 3, 40, 5)[0][:, :33])).save(folder / "wide.ppm")
    Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8)).save(folder / "grey.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.parametrize("fallback", ["--no-fallback", "--fallback"])
def test_rgb_image_files_of_any_size_round_trip_through_bbzip(tmp_path, rgb_model_file, fallback):
    from PIL import Image

    photos = _photo_folder(tmp_path / "photos")
    _bbzip("compress", photos, "-o", tmp_path / "p.bb", "--model", rgb_model_file, fallback)
    listing = _bbzip("list", tmp_path / "p.bb")
    if fallback == "--no-fallback":  # both RGB images in the model stream: 3 x 3 + 5 x 5 tiles of 8 x 8
        assert "stream:  2 images (34 tiles)" in listing
    _bbzip("decompress", tmp_path / "p.bb", "-o", tmp_path / "out", "--model", rgb_model_file)
    for name in ("small.png", "wide.ppm", "grey.png"):
        with Image.open(photos / name) as before, Image.open(tmp_path / "out" / "photos" / name) as after:
            assert before.mode == after.mode and np.array_equal(np.asarray(before), np.asarray(after))
    assert (tmp_path / "out" / "photos" / "notes.txt").read_text() == "not an image"


def _array_folder(folder):
    """Arrays of colour images of any size, in every layout bbzip reads as images, and grey ones
    (which an RGB model does not take)."""
    folder.mkdir()
    photo = _smooth_tiles(1, 3, 40, 6)[0]
    np.save(folder / "one.npy", photo[:19, :33])  # a single (H, W, 3) image
    np.save(folder / "fortran.npy", np.asfortranarray(photo[:11, :17]))
    np.save(folder / "stack.npy", _smooth_tiles(3, 3, 24, 7)[:, :21])  # (N, H, W, 3)
    np.save(folder / "grey.npy", _smooth_tiles(1, 1, 24, 8)[0])  # a single (H, W) grey image
    np.savez(folder / "members.npz", first=_smooth_tiles(2, 3, 16, 9)[:, :, :9], labels=np.arange(4),
             second=_smooth_tiles(1, 3, 16, 10)[:, :, :9], other=_smooth_tiles(1, 3, 12, 11))
    return folder


@pytest.mark.parametrize("fallback", ["--no-fallback", "--fallback"])
def test_arrays_of_colour_images_of_any_size_round_trip_through_a_tiled_model(tmp_path, rgb_model_file, fallback):
    """Single images (H, W, 3) in C or Fortran order, stacks (N, H, W, 3) and .npz members go to
    the model as tiles and come back byte for byte; an .npz member of another image shape than
    the first, and grey arrays (an RGB model does not take them), are kept as bytes."""
    arrays = _array_folder(tmp_path / "arrays")
    _bbzip("compress", arrays, "-o", tmp_path / "a.bb", "--model", rgb_model_file, fallback)
    listing = _bbzip("list", tmp_path / "a.bb")
    rows = [line.split() for line in listing.splitlines() if line.endswith((".npy", ".npz"))]
    images = {row[-1]: int(row[-3]) for row in rows if row[0] in ("model", "members")}
    assert images == {"arrays/one.npy": 1, "arrays/fortran.npy": 1, "arrays/stack.npy": 3, "arrays/members.npz": 3} \
        or fallback == "--fallback"
    assert [row[0] for row in rows if row[-1] == "arrays/grey.npy"] == ["stored"]
    _bbzip("decompress", tmp_path / "a.bb", "-o", tmp_path / "out", "--model", rgb_model_file)
    for path in sorted(arrays.iterdir()):
        assert (tmp_path / "out" / "arrays" / path.name).read_bytes() == path.read_bytes(), path.name


def _rgba(stack: np.ndarray, seed: int) -> np.ndarray:
    """RGBA images (N, H, W, 4) of colour images: alpha 0 (colour under it that must come back),
    255, and a ramp between them."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros(stack.shape[:3], dtype=np.uint8)
    height, width = stack.shape[1:3]
    alpha[:, height // 3 :] = 255
    alpha[:, : height // 3, : width // 2] = np.linspace(0, 255, width // 2).astype(np.uint8)
    alpha[:, 0, 0] = rng.integers(0, 256, len(stack))
    return np.concatenate([stack, alpha[..., None]], axis=-1)


def _rgba_folder(folder: Path) -> Path:
    folder.mkdir()
    np.save(folder / "one.npy", _rgba(_smooth_tiles(1, 3, 24, 12)[:, :19], 0)[0])  # a single (H, W, 4) image
    np.save(folder / "fortran.npy", np.asfortranarray(_rgba(_smooth_tiles(2, 3, 16, 13)[:, :11], 1)))
    np.save(folder / "stack.npy", _rgba(_smooth_tiles(3, 3, 24, 14)[:, :21], 2))  # (N, H, W, 4)
    # an RGBA member and an RGB one of the same size, around a member that is not an image
    np.savez(folder / "members.npz", rgba=_rgba(_smooth_tiles(2, 3, 16, 15)[:, :, :9], 3), labels=np.arange(4),
             rgb=_smooth_tiles(1, 3, 16, 16)[:, :, :9])
    return folder


@pytest.mark.parametrize("fallback", ["--no-fallback", "--fallback"])
def test_rgba_arrays_send_their_colour_to_the_model_and_keep_their_alpha(tmp_path, rgb_model_file, fallback):
    """Arrays of RGBA images (a single (H, W, 4) image in C order, a Fortran-order stack
    (N, H, W, 4), .npz members beside RGB and other ones) go to the model as their colour's
    tiles, their alpha planes a blob beside them; fully transparent pixels keep their colour,
    and every file comes back byte for byte."""
    arrays = _rgba_folder(tmp_path / "arrays")
    _bbzip("compress", arrays, "-o", tmp_path / "a.bb", "--model", rgb_model_file, fallback)
    listing = _bbzip("list", tmp_path / "a.bb")
    rows = {line.split()[-1]: line.split() for line in listing.splitlines() if line.endswith((".npy", ".npz"))}
    assert rows["arrays/stack.npy"][2] == "3x21x24x4"
    if fallback == "--no-fallback":  # (with it, a classic codec keeps the little test model's images smaller)
        assert {name: (row[0], int(row[-3])) for name, row in rows.items()} == {
            "arrays/one.npy": ("model", 1), "arrays/fortran.npy": ("model", 2), "arrays/stack.npy": ("model", 3),
            "arrays/members.npz": ("members", 3)}
    _bbzip("decompress", tmp_path / "a.bb", "-o", tmp_path / "out", "--model", rgb_model_file)
    for path in sorted(arrays.iterdir()):
        assert (tmp_path / "out" / "arrays" / path.name).read_bytes() == path.read_bytes(), path.name


def test_a_damaged_alpha_blob_loses_its_entry_only(tmp_path, rgb_model_file):
    """An RGBA array whose alpha blob is damaged (or holds a plane more than its images) is
    lost in one line that names it, and --salvage writes the other entries."""
    from click.testing import CliRunner

    from bbzip.cli.archive import write_archive
    from bbzip.cli.main import cli
    from bbzip.cli.xz import xz
    from tests.test_hostile import _as_dicts, _with_blob

    arrays = _rgba_folder(tmp_path / "arrays")
    _bbzip("compress", arrays, "-o", tmp_path / "a.bb", "--model", rgb_model_file, "--no-fallback")
    header, payload = _as_dicts((tmp_path / "a.bb").read_bytes())
    span = next(entry for entry in header["entries"] if entry["name"] == "arrays/stack.npy")["blobs"][0]
    flipped = bytearray(payload[span["offset"] : span["offset"] + span["length"]])
    flipped[len(flipped) // 2] ^= 0x40
    planes = np.load(arrays / "stack.npy")[..., 3]
    for blob in (bytes(flipped), xz(planes.tobytes() + bytes(21 * 24))):  # damaged; its planes and one more
        damaged = write_archive(*_with_blob(copy.deepcopy(header), payload, "arrays/stack.npy", blob))
        (tmp_path / "bad.bb").write_bytes(damaged)
        result = CliRunner().invoke(cli, ["decompress", str(tmp_path / "bad.bb"), "-o", str(tmp_path / "out"),
                                          "--model", str(rgb_model_file), "--force", "--salvage"])
        assert result.exit_code == 1 and "1 of 4 entries damaged: arrays/stack.npy" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out" / "arrays" / "stack.npy").exists()
        for name in ("one.npy", "fortran.npy", "members.npz"):
            assert (tmp_path / "out" / "arrays" / name).read_bytes() == (arrays / name).read_bytes()


@pytest.mark.parametrize("shape", [[13000, 13000, 3], [38, 19, 3], [2, 19, 33, 3], [19, 33]])
def test_an_array_whose_tiles_do_not_make_its_images_is_one_line(tmp_path, rgb_model_file, shape):
    """A table forged to give a tiled array's one image another shape (a huge one, other tile
    counts, two images, grey) is damage in one line, and nothing the size of what it claims is
    allocated."""
    from click.testing import CliRunner

    from bbzip.cli.archive import write_archive
    from bbzip.cli.main import cli
    from tests.test_hostile import _as_dicts, _outcome

    folder = _array_folder(tmp_path / "arrays")
    result = CliRunner().invoke(cli, ["compress", str(folder / "one.npy"), "-o", str(tmp_path / "a.bb"),
                                      "--model", str(rgb_model_file), "--no-fallback"])
    assert result.exit_code == 0, result.output
    header, payload = _as_dicts((tmp_path / "a.bb").read_bytes())
    header["entries"][0]["shape"] = shape
    code, output, _ = _outcome(tmp_path, write_archive(header, payload), rgb_model_file)
    assert code == 1 and "damaged" in output, output


def test_a_tiled_default_takes_arrays_of_photos(tmp_path):
    """With no --model, a single RGB photo array and a grey stack of photo crops go to the shipped
    tiled models (they were kept as xz bytes, at several times the size); --compare sets each
    beside its PNG and JPEG XL files."""
    from click.testing import CliRunner
    from PIL import Image

    from bbzip.cli.main import cli

    samples = Path(__file__).parents[1] / "samples"
    with Image.open(samples / "photos" / "e_foggy-trees.png") as photo:
        pixels = np.asarray(photo.convert("RGB"))[:70, :90]
    for name, array in (("photo.npy", pixels), ("grey.npy", np.stack([pixels[..., 0], pixels[..., 1]]))):
        np.save(tmp_path / name, array)
        result = CliRunner().invoke(cli, ["compress", str(tmp_path / name), "-o", str(tmp_path / f"{name}.bb"), "--no-fallback",
                                          "--compare"])
        assert result.exit_code == 0 and re.search(rf"^{name}\s+{len(array) if name == 'grey.npy' else 1}\s", result.output,
                                                   re.MULTILINE), result.output
        listing = CliRunner().invoke(cli, ["list", str(tmp_path / f"{name}.bb")]).output
        assert ("tiled-rgb-photos" if name == "photo.npy" else "tiled-grey-photos") in listing
        assert (tmp_path / f"{name}.bb").stat().st_size < 0.5 * array.nbytes
        result = CliRunner().invoke(cli, ["decompress", str(tmp_path / f"{name}.bb"), "-o", str(tmp_path / name[:-4])])
        assert result.exit_code == 0, result.output
        assert (tmp_path / name[:-4] / name).read_bytes() == (tmp_path / name).read_bytes()


@pytest.fixture(scope="module")
def grey_model_file(tmp_path_factory):
    from bbzip.models.architectures import save_frozen

    path = tmp_path_factory.mktemp("tiled") / "grey.safetensors"
    save_frozen(FrozenTiledARVAE.freeze(_trained(1, 0)), path)
    return path


def _with_alpha(colour: np.ndarray, seed: int) -> np.ndarray:
    """Colour pixels with an alpha plane: opaque, a fully transparent band (whose colour must come
    back too) and a half-transparent one."""
    alpha = np.full(colour.shape[:2], 255, dtype=np.uint8)
    alpha[:, : 3 + seed] = 0
    alpha[5 : 7 + seed] = 128
    return np.dstack([colour, alpha])


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
@pytest.mark.parametrize("fallback", ["--no-fallback", "--fallback"])
def test_images_with_alpha_go_to_the_model_with_their_alpha_plane_beside(tmp_path, rgb_model_file, grey_model_file,
                                                                         mode, fallback):
    """An RGBA (LA) image file's colour goes to the RGB (grey) model, its alpha plane beside it as
    a classic blob; both come back exactly, the colour of fully transparent pixels too."""
    from click.testing import CliRunner
    from PIL import Image

    from bbzip.cli.main import cli

    model = rgb_model_file if mode == "RGBA" else grey_model_file
    channels = 3 if mode == "RGBA" else 1
    folder = tmp_path / "alpha"
    folder.mkdir()
    for seed, (height, width) in enumerate([(19, 26), (24, 24)]):
        colour = _smooth_tiles(1, channels, 32, seed)[0][:height, :width]
        Image.fromarray(_with_alpha(colour, seed), mode=mode).save(folder / f"{seed}.png")
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "a.bb"), "--model", str(model), fallback])
    assert result.exit_code == 0, result.output
    listing = CliRunner().invoke(cli, ["list", str(tmp_path / "a.bb")]).output
    kept = [line.split()[0] for line in listing.splitlines() if line.endswith(".png")]
    assert kept == ["model+alpha"] * 2 or fallback == "--fallback", listing
    result = CliRunner().invoke(cli, ["decompress", str(tmp_path / "a.bb"), "-o", str(tmp_path / "out"), "--model", str(model)])
    assert result.exit_code == 0, result.output
    for path in sorted(folder.iterdir()):
        with Image.open(path) as before, Image.open(tmp_path / "out" / "alpha" / path.name) as after:
            assert before.mode == after.mode == mode and np.array_equal(np.asarray(before), np.asarray(after))


def test_an_alpha_plane_swapped_for_another_is_damage(tmp_path, rgb_model_file):
    """Two RGBA images' alpha blobs swapped: each decodes as a plane of the right size, so only
    the entry's crc32 (of its pixels, alpha and all) tells; the entry taken alone is damaged."""
    from click.testing import CliRunner
    from PIL import Image

    from bbzip.cli.archive import write_archive
    from bbzip.cli.main import cli
    from tests.test_hostile import _as_dicts, _with_blob

    folder = tmp_path / "alpha"
    folder.mkdir()
    for seed in (0, 1):
        Image.fromarray(_with_alpha(_smooth_tiles(1, 3, 16, seed)[0], seed), mode="RGBA").save(folder / f"{seed}.png")
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "a.bb"), "--model", str(rgb_model_file),
                                      "--no-fallback"])
    assert result.exit_code == 0, result.output
    header, payload = _as_dicts((tmp_path / "a.bb").read_bytes())
    first, second = header["entries"]
    blobs = [payload[e["blobs"][0]["offset"] :][: e["blobs"][0]["length"]] for e in (first, second)]
    first["codec"], second["codec"] = second["codec"], first["codec"]
    header, payload = _with_blob(header, payload, first["name"], blobs[1])
    header, payload = _with_blob(header, payload, second["name"], blobs[0])
    (tmp_path / "forged.bb").write_bytes(write_archive(header, payload))
    result = CliRunner().invoke(cli, ["decompress", str(tmp_path / "forged.bb"), "alpha/0.png", "-o", str(tmp_path / "out"),
                                      "--model", str(rgb_model_file)])
    assert result.exit_code == 1 and "checksum" in result.output, result.output


def test_known_intervals_give_the_same_stream(rgb_model_file):
    """The encoder given the tiles' intervals (as the fallback computed them) writes the stream
    it writes when it computes them itself."""
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles

    frozen = load_frozen(rgb_model_file)
    symbols = to_tiles(_smooth_tiles(1, 3, 24, 12)[0][:13, :21], 8).reshape(6, -1)
    extents, settings = tile_extents(13, 21, 8), CodingSettings(batch_size=6)
    known = frozen.intervals(symbols, settings.likelihood_precision)
    assert stream.encode(frozen, symbols, settings, extents, known) == stream.encode(frozen, symbols, settings, extents)


def test_images_smaller_than_a_tile_get_the_intervals_the_whole_tile_gives(rgb_model_file):
    """Images smaller than a tile (CIFAR's 32x32 in a tile of 128) run the head over the top-left
    square that holds them and their windows only: every value inside them gets the interval the
    whole tile gives it, so the codelength and the stream are the same, and it decodes."""
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles
    from bbzip.models.wavefront import inside_image

    frozen = load_frozen(rgb_model_file).with_tile(16)
    images = _smooth_tiles(5, 3, 16, 9)[:, :5, :8]  # the square: 5 rows, 8 columns and the window's reach
    symbols = np.concatenate([to_tiles(image, 16) for image in images]).reshape(5, -1)
    extents = np.concatenate([tile_extents(5, 8, 16) for _ in images])
    settings = CodingSettings(batch_size=5)
    precision = settings.likelihood_precision
    assert frozen._coded_side(extents) < 16
    whole, square = frozen.intervals(symbols, precision), frozen.intervals(symbols, precision, extents)
    inside = inside_image(frozen.rows, frozen.columns, extents)
    for part_of_whole, part_of_square in zip(whole[:2], square[:2]):
        assert np.array_equal(part_of_whole[inside], part_of_square[inside])
    assert np.array_equal(frozen.codelength_bits(symbols, settings, extents), frozen.codelength_of(whole[1], precision, extents))
    data = stream.encode(frozen, symbols, settings, extents)
    assert data == stream.encode(frozen, symbols, settings, extents, whole)
    assert np.array_equal(stream.decode(frozen, data, 5, settings, extents), symbols)


def test_the_head_runs_only_over_the_pixels_inside_the_image(rgb_model_file, monkeypatch):
    """An image's last tiles lie partly outside it: the intervals and the codelength run the head
    over the pixels inside it only (a photo of 512x341 in tiles of 256 has half again as many
    pixels on its tiles), and every value inside gets the interval the whole tile gives it."""
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles
    from bbzip.models.wavefront import inside_image

    frozen = load_frozen(rgb_model_file).with_tile(64)  # a tile is more than one pass of the head
    image = np.tile(_smooth_tiles(1, 3, 64, 13)[0], (2, 2, 1))[:70, :100]
    symbols, extents = to_tiles(image, 64).reshape(4, -1), tile_extents(70, 100, 64)
    settings = CodingSettings(batch_size=4)
    precision = settings.likelihood_precision
    whole = frozen.intervals(symbols, precision)
    rows = []
    head_forward = FrozenTiledARVAE.head_forward
    monkeypatch.setattr(FrozenTiledARVAE, "head_forward", lambda self, inputs: rows.append(len(inputs)) or head_forward(self, inputs))
    inside = inside_image(frozen.rows, frozen.columns, extents)
    for part_of_whole, part in zip(whole[:2], frozen.intervals(symbols, precision, extents)[:2]):
        assert np.array_equal(part_of_whole[inside], part[inside])
    assert sum(rows) == inside.sum() == 70 * 100
    assert np.array_equal(frozen.codelength_bits(symbols, settings, extents), frozen.codelength_of(whole[1], precision, extents))
    assert sum(rows) == 2 * 70 * 100


@pytest.mark.parametrize("height, width, tile", [(13, 21, 8), (5, 6, 16)], ids=["edges", "square"])
def test_a_check_against_the_tiles_gives_what_decoding_gives(rgb_model_file, height, width, tile):
    """Decoding that knows the tiles it should find (compress's check) pops them without a search
    and gives exactly what decoding gives, edge repetition included; a tile that differs inside
    its image is a CorruptStream, outside it (never coded) it changes nothing. `square`: images
    smaller than a tile, coded as tiles of a smaller square (models/stream.py)."""
    from bbzip.bbans import CorruptStream
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles

    frozen = load_frozen(rgb_model_file).with_tile(tile)
    images = _smooth_tiles(3, 3, 24, 13)[:, :height, :width]
    symbols = np.concatenate([to_tiles(image, tile) for image in images]).reshape(-1, tile * tile * 3)
    extents = np.concatenate([tile_extents(height, width, tile) for _ in images])
    settings = CodingSettings(batch_size=4)
    data = stream.encode(frozen, symbols, settings, extents, squares=True)
    decoded = stream.decode(frozen, data, len(symbols), settings, extents, squares=True)
    checked = stream.decode(frozen, data, len(symbols), settings, extents, squares=True, expected=symbols)
    assert np.array_equal(checked, decoded) and np.array_equal(decoded, symbols)
    outside = symbols.reshape(len(symbols), tile, tile, 3).copy()
    outside[:, height:] = outside[:, :, width:] = 7
    assert np.array_equal(stream.decode(frozen, data, len(symbols), settings, extents, squares=True,
                                        expected=outside.reshape(len(symbols), -1)), decoded)
    wrong = symbols.copy()
    wrong[-1, 3 * (tile + 1) + 2] ^= 1  # the last tile's pixel (1, 1), blue
    with pytest.raises(CorruptStream):
        stream.decode(frozen, data, len(symbols), settings, extents, squares=True, expected=wrong)


def _coded_with_known(rgb_model_file, known_of=None):
    """(model, symbols, extents, settings, known, data): three tiles of images of 13x21 in tiles
    of 8 coded with `known` (their own intervals, or known_of(model, symbols, extents, precision))."""
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles

    frozen = load_frozen(rgb_model_file).with_tile(8)
    images = _smooth_tiles(3, 3, 24, 17)[:, :13, :21]
    symbols = np.concatenate([to_tiles(image, 8) for image in images]).reshape(-1, 8 * 8 * 3)
    extents = np.concatenate([tile_extents(13, 21, 8) for _ in images])
    settings = CodingSettings(batch_size=len(symbols))
    precision = settings.likelihood_precision
    known = (known_of or (lambda model, *args: model.intervals(*args)))(frozen, symbols, precision, extents)
    return frozen, symbols, extents, settings, known, stream.encode(frozen, symbols, settings, extents, known)


def test_a_check_with_the_known_intervals_pops_them_without_the_network(rgb_model_file, monkeypatch):
    """Compress's check, handed the intervals the encoder pushed, pops those: with no step
    recomputed it runs no network at all, and gives what decoding gives; a message that holds
    other values is still a CorruptStream."""
    from bbzip.bbans import CorruptStream
    from bbzip.models import frozen_tiled_ar

    frozen, symbols, extents, settings, known, data = _coded_with_known(rgb_model_file)
    decoded = stream.decode(frozen, data, len(symbols), settings, extents)
    monkeypatch.setattr(frozen_tiled_ar, "RECOMPUTED_STEPS", 0)
    rows = []
    head_forward = FrozenTiledARVAE.head_forward
    monkeypatch.setattr(FrozenTiledARVAE, "head_forward", lambda self, inputs: rows.append(len(inputs)) or head_forward(self, inputs))
    checked = stream.decode(frozen, data, len(symbols), settings, extents, expected=symbols, known=known)
    assert np.array_equal(checked, decoded) and np.array_equal(decoded, symbols) and not rows
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 4
    with pytest.raises(CorruptStream):
        stream.decode(frozen, bytes(damaged), len(symbols), settings, extents, expected=symbols, known=known)


def test_a_check_refuses_intervals_computed_from_other_tiles(rgb_model_file, monkeypatch):
    """Intervals travel from the fallback to the check beside their tiles: an encoder handed the
    intervals of other tiles (here: the next image's) writes a stream that pops back with those
    very intervals, and the decoder would not find its tiles in it. Each tile's intervals carry
    the digest of the tile they were computed from, and the check refuses them."""
    from bbzip.bbans import CorruptStream
    from bbzip.models import frozen_tiled_ar

    def of_other_tiles(model, symbols, precision, extents):
        return model.intervals(np.roll(symbols, 6, axis=0), precision, np.roll(extents, 6, axis=0))

    frozen, symbols, extents, settings, known, data = _coded_with_known(rgb_model_file, of_other_tiles)
    monkeypatch.setattr(frozen_tiled_ar, "RECOMPUTED_STEPS", 0)
    with pytest.raises(CorruptStream, match="other tiles"):
        stream.decode(frozen, data, len(symbols), settings, extents, expected=symbols, known=known)
    # what the check spares a user: the decoder does not find the tiles (a block's digest would say so)
    assert not np.array_equal(stream.decode(frozen, data, len(symbols), settings, extents), symbols)


def test_a_check_recomputes_a_share_of_the_steps_with_the_decoder_s_network(rgb_model_file, monkeypatch):
    """Intervals computed from the right tiles but not as the decoder computes them (here: one
    value's interval from a changed tile) pass the digest; the steps the check runs the
    decoder's network on find them (all of them, with the share at 1)."""
    from bbzip.bbans import CorruptStream
    from bbzip.models import frozen_tiled_ar
    from bbzip.models.tile_intervals import TileIntervals

    def one_value_off(model, symbols, precision, extents):
        changed = symbols.copy()
        changed[4, 8 * 3 * 2 + 3 * 2] += 9  # the fifth tile's pixel (2, 2), red
        start, freq, _ = model.intervals(changed, precision, extents)
        return TileIntervals(start, freq, model.intervals(symbols, precision, extents).digests)

    frozen, symbols, extents, settings, known, data = _coded_with_known(rgb_model_file, one_value_off)
    monkeypatch.setattr(frozen_tiled_ar, "RECOMPUTED_STEPS", 1)
    with pytest.raises(CorruptStream, match="decoder's network"):
        stream.decode(frozen, data, len(symbols), settings, extents, expected=symbols, known=known)
    monkeypatch.setattr(frozen_tiled_ar, "RECOMPUTED_STEPS", 0)
    stream.decode(frozen, data, len(symbols), settings, extents, expected=symbols, known=known)  # unseen without it


def test_compress_s_check_refuses_intervals_handed_to_the_wrong_tiles(tmp_path, rgb_model_file, monkeypatch):
    """End to end: where the fallback's intervals reach the encoder for other tiles than their
    own (here: shifted by one tile), compress exits 1 and writes nothing: by the digests alone
    (no step recomputed)."""
    from click.testing import CliRunner

    from bbzip.cli import coding, fallback
    from bbzip.cli.main import cli
    from bbzip.models import frozen_tiled_ar
    from bbzip.models.tile_intervals import TileIntervals

    monkeypatch.setattr(frozen_tiled_ar, "RECOMPUTED_STEPS", 0)
    monkeypatch.setattr(fallback, "_classic_if_smaller", lambda image, cost, share, **_: None)  # the model keeps every image
    of_model_tiles = coding._KnownIntervals.of_model_tiles

    def shifted(self, *args):
        known = of_model_tiles(self, *args)
        return None if known is None else TileIntervals(*(np.roll(part, 1, axis=0) for part in known))

    monkeypatch.setattr(coding._KnownIntervals, "of_model_tiles", shifted)
    arrays = tmp_path / "in"
    arrays.mkdir()
    np.save(arrays / "photos.npy", _smooth_tiles(2, 3, 16, 3))
    out = tmp_path / "a.bb"
    result = CliRunner().invoke(cli, ["compress", str(arrays), "-o", str(out), "--model", str(rgb_model_file), "-T", "1"])
    assert result.exit_code == 1 and "would not decode" in result.output, result.output
    assert not out.exists()


def test_compress_fails_where_the_encoder_and_the_decoder_disagree(tmp_path, rgb_model_file, monkeypatch):
    """Compress's check decodes the archive with the decoder's own network, knowing the tiles:
    an encoder that codes one value other than the decoder would find (here: the intervals of a
    changed tile) gives an archive that does not decode to its input, and compress exits 1
    without writing it."""
    from click.testing import CliRunner

    from bbzip.cli.main import cli

    intervals = FrozenTiledARVAE.intervals

    def of_another_tile(self, symbols, precision, extents=None):
        changed = symbols.copy()
        changed[0, 0] = (int(changed[0, 0]) + 1) % 256
        return intervals(self, changed, precision, extents)

    monkeypatch.setattr(FrozenTiledARVAE, "intervals", of_another_tile)
    arrays = tmp_path / "in"
    arrays.mkdir()
    np.save(arrays / "photos.npy", _smooth_tiles(2, 3, 16, 3))
    out = tmp_path / "a.bb"
    result = CliRunner().invoke(cli, ["compress", str(arrays), "-o", str(out), "--model", str(rgb_model_file),
                                      "--no-fallback", "-T", "1"])
    assert result.exit_code == 1 and "would not decode" in result.output, result.output
    assert not out.exists()


def test_compress_runs_the_network_once_over_each_tile(tmp_path, rgb_model_file, monkeypatch):
    """With the fallback, the intervals its codelength took are handed to the encoder: the
    network runs over each tile once before the check decodes (it ran twice: fallback, then
    encoder)."""
    from click.testing import CliRunner

    from bbzip.cli import fallback
    from bbzip.cli.main import cli

    monkeypatch.setattr(fallback, "_classic_if_smaller", lambda image, cost, share, **_: None)  # the model keeps every image
    counted = []
    chunk_intervals = FrozenTiledARVAE._chunk_intervals
    monkeypatch.setattr(FrozenTiledARVAE, "_chunk_intervals",  # counted for whole tiles (not a square's own call)
                        lambda self, chunk, precision, side=None, extents=None:
                        (self.config.tile == 8 and counted.append(len(chunk)))
                        or chunk_intervals(self, chunk, precision, side, extents))
    arrays = _array_folder(tmp_path / "arrays")
    result = CliRunner().invoke(cli, ["compress", str(arrays), "-o", str(tmp_path / "a.bb"), "--model", str(rgb_model_file),
                                      "-T", "1"])
    assert result.exit_code == 0, result.output
    coded = int(re.search(r"\((\d+) tiles?\)", result.output).group(1))  # of the images the model kept
    colour = [np.load(path) for path in sorted(arrays.glob("*.npy")) if np.load(path).shape[-1] == 3]
    with np.load(arrays / "members.npz") as members:
        colour += [members["first"], members["second"]]
    judged = sum(math.ceil(a.shape[-3] / 8) * math.ceil(a.shape[-2] / 8) * (len(a) if a.ndim == 4 else 1) for a in colour)
    assert coded == sum(counted) == judged  # each tile judged once, and not again to be coded


def test_an_array_the_archive_s_model_does_not_code_keeps_its_images_classic(tmp_path):
    """A grey array beside a colour one: the RGB photo model, which codes most of the pixels,
    takes the colour array, and the grey array's images are kept by classic codecs in its entry
    (compress refused the folder before)."""
    from click.testing import CliRunner
    from PIL import Image

    from bbzip.cli.main import cli

    samples = Path(__file__).parents[1] / "samples"
    with Image.open(samples / "photos" / "e_foggy-trees.png") as photo:
        pixels = np.asarray(photo.convert("RGB"))[:70, :90]
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "colour.npy", pixels)
    np.save(folder / "grey.npy", np.stack([pixels[:40, :50, 0], pixels[:40, :50, 1]]))
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "a.bb")])
    assert result.exit_code == 0, result.output
    listing = CliRunner().invoke(cli, ["list", str(tmp_path / "a.bb")]).output
    kept = {line.split()[-1]: line.split()[0] for line in listing.splitlines() if line.endswith(".npy")}
    assert "tiled-rgb-photos" in listing and kept["arrays/grey.npy"] == "model+classic", listing
    result = CliRunner().invoke(cli, ["decompress", str(tmp_path / "a.bb"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for name in ("colour.npy", "grey.npy"):
        assert (tmp_path / "out" / "arrays" / name).read_bytes() == (folder / name).read_bytes()


def test_photos_beside_digits_go_to_the_model_of_most_pixels(tmp_path):
    """One archive, one model: the shipped RGB default takes the photo (most pixels), and the
    28x28 grey digit, which it does not code, is kept by a classic codec, both restored (before,
    no default coded both and compress crashed)."""
    from shutil import copy

    from click.testing import CliRunner
    from PIL import Image

    from bbzip.cli.main import cli

    samples = Path(__file__).parents[1] / "samples"
    folder = tmp_path / "mixed"
    folder.mkdir()
    with Image.open(samples / "photos" / "e_foggy-trees.png") as photo:
        Image.fromarray(np.asarray(photo)[:70, :90]).save(folder / "photo.png")
    copy(samples / "digits" / "grey" / "0000-7.png", folder / "digit.png")
    # --no-fallback: the model takes every image it codes, so only the digit can be classic
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "m.bb"), "--no-fallback", "--compare"])
    assert result.exit_code == 0, result.output
    # --compare counts the digit too (it counted only the model's images, but the archive's bytes)
    assert re.search(r"^mixed/\s+2\s", result.output, re.MULTILINE), result.output
    listing = CliRunner().invoke(cli, ["list", str(tmp_path / "m.bb")]).output
    assert "tiled-rgb-photos" in listing
    kept = {line.split()[-1]: line.split()[0] for line in listing.splitlines() if line.endswith(".png")}
    assert kept["mixed/digit.png"].startswith("classic") and kept["mixed/photo.png"] == "model"
    result = CliRunner().invoke(cli, ["decompress", str(tmp_path / "m.bb"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for name in ("photo.png", "digit.png"):
        with Image.open(folder / name) as a, Image.open(tmp_path / "out" / "mixed" / name) as b:
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("tile, radius", [(8, 1), (13, 2), (64, 2)])
def test_the_wavefront_decodes_each_pixel_once_after_its_window(tile, radius):
    """Every pixel is in one step, after every pixel of its causal window; the rows of a step
    are on different lanes of their tile."""
    from bbzip.models.local_ar_config import context_offsets
    from bbzip.models.wavefront import Wavefront, full_extents

    wave = Wavefront(tile, radius)
    step_of = np.full(tile * tile, -1)
    for number in range(wave.steps):
        step = wave.step(number, full_extents(2, tile))
        assert len(set(step.lanes.tolist())) == len(step.lanes)  # two tiles: no lane twice in a step
        assert step.lanes.max(initial=0) < 2 * wave.lanes and not len(step.outside_tiles)
        pixels = step.pixels[step.tiles == 0]
        assert (step_of[pixels] == -1).all()
        step_of[pixels] = number
    assert (step_of >= 0).all()
    for pixel in range(tile * tile):
        row, column = divmod(pixel, tile)
        for di, dj in context_offsets(radius):
            if 0 <= row + di and 0 <= column + dj < tile:
                assert step_of[(row + di) * tile + column + dj] < step_of[pixel]


@pytest.mark.parametrize("tile, radius", [(8, 1), (16, 2), (32, 3)])
def test_the_wavefront_s_steps_made_a_chunk_at_a_time_are_its_steps_one_by_one(tile, radius):
    """each_step (chunks of steps of any size, in either order) gives what step, a chunk of one,
    gives for each, for tiles partly outside their images too (the coded order itself is held
    by the golden archives of tiled models)."""
    from bbzip.models.wavefront import Wavefront

    wave, rng = Wavefront(tile, radius), np.random.default_rng(tile)
    extents = rng.integers(1, tile + 1, (5, 2))
    extents[0] = tile
    for chunk in (None, 1, 7):
        for reverse in (False, True):
            numbers = range(wave.steps - 1, -1, -1) if reverse else range(wave.steps)
            steps = list(wave.each_step(extents, reverse, chunk))
            assert len(steps) == wave.steps
            for number, step in zip(numbers, steps):
                assert all(np.array_equal(a, b) for a, b in zip(step, wave.step(number, extents), strict=True))


@pytest.mark.parametrize("shape", [(2, 13, 21, 3), (1, 40, 17, 3), (3, 8, 8, 3), (1, 9, 30)])
def test_tiles_cut_a_slice_at_a_time_are_the_tiles_of_the_whole_stack(shape):
    """Every slice of TilesOf (a block's share: within one image only its rows of tiles are cut)
    gives the tiles of the whole stack cut at once."""
    from bbzip.cli.sources import TilesOf
    from bbzip.models.pixels import Pixels

    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    codes = Pixels(3 if len(shape) == 4 else 1, False, None, None, 8)
    whole, tiles = codes.to_units(images), TilesOf(images, codes)
    assert len(tiles) == len(whole)
    for lo in range(len(whole)):
        for hi in range(lo, len(whole) + 1):
            assert np.array_equal(tiles[lo:hi], whole[lo:hi]), (lo, hi)


def test_tile_extents_say_what_lies_inside_the_image():
    from bbzip.models.tiling import tile_extents

    assert tile_extents(13, 21, 8).tolist() == [[8, 8], [8, 8], [8, 5], [5, 8], [5, 8], [5, 5]]
    assert tile_extents(16, 8, 8).tolist() == [[8, 8], [8, 8]]


def test_pixels_outside_the_image_are_not_coded(rgb_model_file):
    """The tiles of a 13x21 image code only its pixels: the codelength counts those alone, the
    stream is that much shorter than coding the edge repetition as well, and it decodes, the
    repetition rebuilt, only with the extents it was written with."""
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles

    frozen = load_frozen(rgb_model_file)
    image = _smooth_tiles(1, 3, 24, 6)[0][:13, :21]
    symbols = to_tiles(image, 8).reshape(6, -1)
    extents = tile_extents(13, 21, 8)
    settings = CodingSettings(batch_size=6)
    per_value = frozen.pixel_distribution(np.zeros((6, 0), dtype=np.int64), symbols, settings.likelihood_precision)
    bits = (settings.likelihood_precision - np.log2(per_value.interval(symbols.astype(np.int64))[1])).reshape(6, 8, 8, 3)
    inside = sum(bits[t, :rows, :columns].sum() for t, (rows, columns) in enumerate(extents))
    heads = 6 * frozen.lanes_per_unit * LANE_HEAD_BITS  # what the lanes' final heads cost beside
    assert np.isclose(frozen.codelength_bits(symbols, settings, extents).sum(), inside + heads)
    assert inside < 0.8 * bits.sum()
    data = stream.encode(frozen, symbols, settings, extents)
    assert len(data) < len(stream.encode(frozen, symbols, settings))
    assert np.array_equal(stream.decode(frozen, data, 6, settings, extents), symbols)
    wrong = extents.copy()
    wrong[2] = (8, 8)
    try:
        assert not np.array_equal(stream.decode(frozen, data, 6, settings, wrong), symbols)
    except Exception as error:  # or the stream runs out (bbans's errors)
        assert type(error).__module__.startswith("bbzip.bbans"), error


def test_a_model_without_a_latent_codes_in_any_tile(rgb_model_file):
    """The tile is how a model without a latent codes (ship --tile): the same weights code an
    image in tiles of 16 as in their own 8, exactly, and fewer pixels lack context."""
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles

    frozen = load_frozen(rgb_model_file)
    wider = frozen.with_tile(16)
    assert wider.config.tile == 16 and wider.config.codes.tile == 16
    image = _smooth_tiles(1, 3, 40, 8)[0][:37, :29]
    settings = CodingSettings(batch_size=8)
    bits = {}
    for model in (frozen, wider):
        tile = model.config.tile
        symbols, extents = to_tiles(image, tile).reshape(-1, tile * tile * 3), tile_extents(37, 29, tile)
        data = stream.encode(model, symbols, settings, extents)
        assert np.array_equal(stream.decode(model, data, len(symbols), settings, extents), symbols)
        bits[tile] = model.codelength_bits(symbols, settings, extents).sum()
    assert bits[16] < bits[8]
    with pytest.raises(ValueError, match="latent"):
        FrozenTiledARVAE.freeze(_trained(3, 2, steps=1)).with_tile(16)


def test_grey_arrays_of_other_sizes_go_to_the_grey_photo_model_beside_grey_photos(tmp_path):
    """A grey image file of any size and a grey array of such images both go to the grey photo
    model, and both come back (before arrays went to it as tiles, compress crashed on them, then
    kept them as bytes)."""
    from click.testing import CliRunner
    from PIL import Image

    from bbzip.cli.main import cli

    folder = tmp_path / "grey"
    folder.mkdir()
    tiles = _smooth_tiles(3, 1, 48, 9)
    Image.fromarray(tiles[0][:40, :45]).save(folder / "scan.png")
    np.save(folder / "stack.npy", np.ascontiguousarray(tiles[1:, :40, :45]))
    result = CliRunner().invoke(cli, ["compress", str(folder), "-o", str(tmp_path / "g.bb"), "--no-fallback"])
    assert result.exit_code == 0, result.output
    listing = CliRunner().invoke(cli, ["list", str(tmp_path / "g.bb")]).output
    kept = {line.split()[-1]: line.split()[0] for line in listing.splitlines() if line.rstrip().endswith(("png", "npy"))}
    assert "tiled-grey-photos" in listing and kept["grey/stack.npy"] == kept["grey/scan.png"] == "model", listing
    result = CliRunner().invoke(cli, ["decompress", str(tmp_path / "g.bb"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(tmp_path / "out" / "grey" / "stack.npy"), tiles[1:, :40, :45])
    with Image.open(tmp_path / "out" / "grey" / "scan.png") as restored:
        assert restored.mode == "L" and np.array_equal(np.asarray(restored), tiles[0][:40, :45])


def test_extents_that_do_not_fit_the_record_are_refused(rgb_model_file):
    """A record's tiles decode only with one extent each (an archive's table gives them from
    its entries' sizes): a table whose sizes make other counts is a one-line StreamError."""
    from bbzip.models import api

    data = api.compress(np.zeros((1, 13, 21, 3), dtype=np.uint8), model=str(rgb_model_file))
    info = api.read_record(data)
    coder = api.coder_for(info, str(rgb_model_file))
    with pytest.raises(api.StreamError, match="entries say 5"):
        list(api.decode_blocks(info, coder, extents=np.full((5, 2), 8)))


def test_the_larger_photo_model_codes_a_photo_exactly_and_smaller():
    """tiled-rgb-photos-large (a wider head over a wider window; not a default) gives back a
    photo crop exactly, in fewer bytes than the default colour model on it."""
    from PIL import Image

    from bbzip.models import api

    with Image.open(Path(__file__).parents[1] / "samples" / "photos" / "e_red-maple.png") as photo:
        crop = np.ascontiguousarray(np.asarray(photo.convert("RGB"))[60:220, 120:300])[None]
    large, default = (api.compress(crop, model=name, cores=1) for name in ("tiled-rgb-photos-large", "tiled-rgb-photos"))
    assert api.read_record(large).model["name"] == "tiled-rgb-photos-large"
    np.testing.assert_array_equal(api.decompress(large, cores=1), crop)
    assert len(large) < len(default)


def test_the_float_likelihood_is_what_the_coder_spends(trained):
    """What training minimises (log_likelihood, mixtures included) is the integer codelength of
    the same tiles, to within the coder's quantisation: a model without a latent only."""
    if trained.config.latent_channels:
        pytest.skip("with a latent the codelength is bits back's, not the likelihood's")
    frozen = FrozenTiledARVAE.freeze(trained)
    tiles = _smooth_tiles(50, trained.config.channels, 8, 4)
    with torch.no_grad():
        nats = -trained.log_likelihood(torch.from_numpy(tiles), trained.likelihood_params(torch.zeros((50, 0))))
    float_bits = nats.numpy() / np.log(2)
    symbols = tiles.reshape(50, -1).astype(np.int64)
    coder_bits = frozen.codelength_bits(symbols, CodingSettings()) - LANE_HEAD_BITS * frozen.lanes_per_unit
    assert np.abs(coder_bits - float_bits).max() < 0.01 * float_bits.mean()


def test_a_block_of_images_smaller_than_a_tile_codes_as_tiles_of_their_square(rgb_model_file):
    """Since format 7 a block whose images all fit a smaller square of the tile codes as tiles of
    that square: fewer lanes (each costs its head, and early in a block a virtual word), fewer
    steps; smaller than whole tiles, exact, the tiles' edge repetition rebuilt. A block with one
    image as large as a tile codes whole tiles, and a stream written before format 7 (whole
    tiles) decodes as it was written."""
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles

    frozen = load_frozen(rgb_model_file).with_tile(32)
    images = [_smooth_tiles(1, 3, 12, seed)[0][: 5 + seed, : 11 - seed] for seed in range(6)]
    symbols = np.concatenate([to_tiles(image, 32).reshape(1, -1) for image in images])
    extents = np.concatenate([tile_extents(*image.shape[:2], 32) for image in images])
    settings = CodingSettings(batch_size=4)
    square = frozen.block_square(extents)
    assert square is not None and square.model.config.tile == 12  # 10 rows, 10 columns and the window's 1, to the stride
    assert square.model.lanes_per_unit < frozen.lanes_per_unit
    in_squares = stream.encode(frozen, symbols, settings, extents, squares=True)
    whole = stream.encode(frozen, symbols, settings, extents)
    assert len(in_squares) < len(whole)
    assert np.array_equal(stream.decode(frozen, in_squares, 6, settings, extents, squares=True), symbols)
    assert np.array_equal(stream.decode(frozen, whole, 6, settings, extents), symbols)
    large = np.concatenate([symbols, to_tiles(_smooth_tiles(1, 3, 32, 9)[0], 32).reshape(1, -1)])
    large_extents = np.concatenate([extents, tile_extents(32, 32, 32)])
    assert frozen.block_square(large_extents) is None
    data = stream.encode(frozen, large, settings, large_extents, squares=True)
    assert data == stream.encode(frozen, large, settings, large_extents)
    assert np.array_equal(stream.decode(frozen, data, 7, settings, large_extents, squares=True), large)


def test_a_square_made_whole_again_is_the_tile_the_image_was_cut_into(rgb_model_file):
    from bbzip.models.architectures import load_frozen
    from bbzip.models.tiling import tile_extents, to_tiles

    frozen = load_frozen(rgb_model_file).with_tile(32)
    image = _smooth_tiles(1, 3, 12, 3)[0][:7, :9]
    tiles = to_tiles(image, 32).reshape(1, -1)
    extents = tile_extents(7, 9, 32)
    square = frozen.block_square(extents)
    assert square.cut(tiles).shape == (1, square.model.config.pixels * 3)
    assert np.array_equal(square.whole(square.cut(tiles), extents), tiles)
