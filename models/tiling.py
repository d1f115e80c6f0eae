"""Images of any size <-> the square tiles a tiled model codes.

An image (H, W) or (H, W, C) is cut into ceil(H / T) x ceil(W / T) tiles of T x T, in raster
order of tiles. Where H or W is not a multiple of T, the image is first extended to the next
multiple by repeating its last row and column: the extension is coded with the rest (a
repeated pixel is what the local model predicts best, so it costs little) and dropped on
decoding, which knows H and W.
"""
from __future__ import annotations

import math

import numpy as np


def tile_grid(height: int, width: int, tile: int) -> tuple[int, int]:
    """(rows, columns) of tiles an image of height x width is cut into."""
    return math.ceil(height / tile), math.ceil(width / tile)


def tile_count(shape, tile: int) -> int:
    rows, columns = tile_grid(shape[0], shape[1], tile)
    return rows * columns


def to_tiles(image: np.ndarray, tile: int) -> np.ndarray:
    """(H, W[, C]) -> (tiles, T, T[, C]), the image extended by edge repetition."""
    height, width = image.shape[:2]
    rows, columns = tile_grid(height, width, tile)
    extra = ((0, rows * tile - height), (0, columns * tile - width)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, extra, mode="edge") if any(extra[0] + extra[1]) else image
    split = padded.reshape(rows, tile, columns, tile, *image.shape[2:])
    return np.ascontiguousarray(np.swapaxes(split, 1, 2)).reshape(rows * columns, tile, tile, *image.shape[2:])


def from_tiles(tiles: np.ndarray, height: int, width: int) -> np.ndarray:
    """The image (height, width[, C]) of its tiles (the inverse of to_tiles)."""
    tile = tiles.shape[1]
    rows, columns = tile_grid(height, width, tile)
    if len(tiles) != rows * columns:
        raise ValueError(f"{len(tiles)} tiles for a {height}x{width} image of {rows}x{columns} tiles")
    joined = np.swapaxes(tiles.reshape(rows, columns, tile, tile, *tiles.shape[3:]), 1, 2)
    return np.ascontiguousarray(joined.reshape(rows * tile, columns * tile, *tiles.shape[3:])[:height, :width])


def tile_extents(height: int, width: int, tile: int) -> np.ndarray:
    """(tiles, 2) int64: the rows and columns of each tile (in to_tiles's order) that lie inside
    the image; the rest is edge repetition."""
    rows, columns = tile_grid(height, width, tile)
    valid_rows = np.minimum(tile, height - tile * np.arange(rows))
    valid_columns = np.minimum(tile, width - tile * np.arange(columns))
    return np.stack(np.broadcast_arrays(valid_rows[:, None], valid_columns[None, :]), axis=-1).reshape(-1, 2).astype(np.int64)
