"""Images kept by a classic codec come back with their mode, depth and every pixel."""
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli


def _round_trip(tmp_path, source):
    runner = CliRunner()
    archive, out = tmp_path / "a.bb", tmp_path / "out"
    result = runner.invoke(cli, ["-q", "compress", str(source), "-o", str(archive)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["-q", "decompress", str(archive), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out / source.name


@pytest.mark.parametrize("transparent_rows", [0, 5])
def test_rgba_comes_back_rgba_with_the_colour_under_transparent_pixels(tmp_path, transparent_rows):
    """0.1 stored opaque RGBA as WebP, which decodes as RGB (the archive could not be opened),
    and WebP dropped the colour of fully transparent pixels."""
    rgba = np.random.default_rng(transparent_rows).integers(0, 256, (40, 50, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:transparent_rows, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "icon.png")
    restored = Image.open(_round_trip(tmp_path, tmp_path / "icon.png"))
    assert restored.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(restored), rgba)


def _png(width, height, bit_depth, colour_type, samples):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("colour_type, channels", [(2, 3), (6, 4), (4, 2)])
def test_16_bit_colour_and_grey_alpha_pngs_keep_their_16_bits(tmp_path, colour_type, channels):
    """Pillow reads these as 8 bits; 0.1 wrote the 8-bit version back without a word."""
    samples = np.random.default_rng(colour_type).integers(0, 65536, (6, 7 * channels), dtype=np.uint16)
    source = tmp_path / "deep.png"
    source.write_bytes(_png(7, 6, 16, colour_type, samples))
    assert _round_trip(tmp_path, source).read_bytes() == source.read_bytes()
