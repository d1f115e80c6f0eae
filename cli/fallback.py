"""The classic fallback: an image goes to the model only if the model codes it smaller than the
best classic codec bbzip has (PNG, WebP, JPEG XL lossless) would keep it.

The model's side is its own codelength for the image on the exact coding path at K = 0
(`codelength_bits`: one posterior sample, the coder's integer tables); K steps only lower it.
The classic side is the real size of the smallest faithful encoding (cli/classic.py) plus what
a classic image costs in the entry table. Trying three codecs on every image would cost more
than coding it, so an image whose model codelength is under a share of its plain PNG size
goes to the model without the others being tried. A model's exact codelength costs about as
much as coding the image, so a model that has one first gives a quick estimate (the local
autoregressive models: from every third pixel), and only the images it does not settle with a
margin to spare get the exact figure (the rest of the work). The shares follow how far below PNG the best
codec goes (benchmarks/archive.py, 1,000 images a set): for grey images JPEG XL and WebP keep
MNIST at 0.75 of PNG's size, for two-valued images JPEG XL keeps it at 0.5. On MNIST every image
then goes to the model untried, and on the sets unlike MNIST the archive stays within 2% of the
best per-image classic codec (the benchmark reports both).

The model judges the images in its own domain (0/1 for a binary model), a classic codec keeps
them as they were read (0/255 stays 0/255). Routing runs on every core, in chunks that do not
depend on the number of cores, so the archive does not either.
"""
from __future__ import annotations


import numpy as np
from PIL import Image

from bbzip.models.blocks import block_bounds
from bbzip.models.scheduler import Job, run_in_order
from bbzip.models.tile_intervals import TileIntervals
from bbzip.models.tiling import from_tiles, tile_grid

from . import classic
from .file_entries import colour_of, model_image

TABLE_COST = 2  # bytes a classic image adds to the table beside its blob (its length, compressed)
# A photo of at least SAMPLED_BANDS bands (of BAND_ROWS rows of pixels) is judged first on every
# SAMPLE_EVERY-th band: the model's exact codelength of those pixels against each classic codec's
# size for the same bands, each band an image of its own. A codec that needs more than
# SAMPLE_MARGIN over the model there is not tried on the whole image, and where none is left the
# model takes the image: on a large photo the whole-image encodes took more time than coding it,
# and most of compress's memory. The margin is wider than a third of a photo's rows misjudged the
# whole by, on the train/ photos (README, "Where the time goes"). Bands are rows of pixels where
# the model's intervals give each pixel's bits, whatever its tile (a model in tiles of 256 would
# otherwise try every codec on every photo under 768 rows), else rows of tiles.
SAMPLED_BANDS = 3
SAMPLE_EVERY = 3
BAND_ROWS = 128
SAMPLE_MARGIN = 0.06
CHUNK_IMAGES = 1024
CHUNK_PIXELS = 1 << 18  # tile pixels of small images judged in one job by a tiled model
WINDOW_CHUNKS = 8  # chunks per core taken ahead of the next result: images held, against cores left idle
# A model's quick estimate (its first_look) settles an image where it lies this factor
# inside a bound: far under the share of plain PNG, or far over plain PNG. On 3,000 MNIST
# images and 1,000 of each set unlike it the estimate stays within a factor 1.35 of the exact
# codelength for grey images (two-valued ones, of few bits, spread wider with as much room to
# spare), and no decision changed (README, "Where the time goes").
QUICK_MARGIN = 1.5
# No PNG file is smaller: its signature (8 bytes), IHDR (25), one IDAT (12) with a zlib stream's
# header and checksum (6; its deflate data not counted) and IEND (12).
SMALLEST_PNG = 63
# The classic codecs a chunk's small images try (_ChunkCodecs): every codec on the first
# SAMPLE_TRIES images that come to the classic codecs and on one in RESAMPLE_EVERY after them;
# a codec more than SKIP_MARGIN larger than the smallest on every one of those is left out for
# the chunk's other images.
SAMPLE_TRIES = 16
RESAMPLE_EVERY = 8
SKIP_MARGIN = 0.1


def route(model, pixels, symbols, settings, cores: int, on_images=None):
    """Yields (index, codec, blob) of each image the classic codecs keep smaller than the model,
    in order, as chunks are done; the rest go to the model. `pixels`: the images (N, H, W) as
    read (or (N, H, W, 3)), which a classic codec keeps; `symbols`: the same images in the model's domain (0/1
    for a binary model), which the model judges. Each an array, or any stack that gives arrays
    for slices."""
    bounds = block_bounds(len(pixels), CHUNK_IMAGES)
    jobs = (Job(route_chunk, (pixels[lo:hi], symbols[lo:hi], settings), hi - lo) for lo, hi in bounds)
    results = run_in_order(model, jobs, cores, on_images, window=WINDOW_CHUNKS * cores)
    for (lo, _), chunk in zip(bounds, results):
        for index in sorted(chunk):
            yield lo + index, *chunk[index]


def route_chunk(model, pixels: np.ndarray, symbols: np.ndarray, settings, on_images=None) -> dict[int, tuple[str, bytes]]:
    symbols = model.to_symbols(symbols)[0]
    share = model.config.codes.defaults.quick_share  # by the value set: two-valued or 8-bit images
    look = model.first_look(symbols, settings)
    estimate, margin = (look.estimate, QUICK_MARGIN) if look is not None else (model.codelength_bits(symbols, settings), 1.0)
    # Images the model takes untried whatever their PNG size make none (most two-valued digits)
    judged = np.flatnonzero(~(estimate / 8 * margin < share * SMALLEST_PNG))
    images = [Image.fromarray(pixels[index], mode="RGB" if pixels.ndim == 4 else "L") for index in judged]
    plains = [classic.plain_png(image) for image in images]
    png_bytes = np.array([len(plain) for plain in plains])
    model_bytes = _model_bytes(look, estimate[judged] / 8, judged, png_bytes, share)
    chosen, codecs = {}, _ChunkCodecs()
    for index, image, plain, cost in zip(judged.tolist(), images, plains, model_bytes.tolist()):
        found = _classic_if_smaller(image, cost, share, plain, codecs)
        if found is not None:
            chosen[index] = found
    if on_images:
        on_images(len(pixels))
    return chosen


def _model_bytes(look, estimate: np.ndarray, which: np.ndarray, png_bytes: np.ndarray, share: float) -> np.ndarray:
    """The model's codelength (bytes) of the images at `which` where the decision needs it, from
    their `estimate` (the exact figure where the model has no first look). Where the quick
    estimate settles it with QUICK_MARGIN to spare, what is given instead only leads to the
    same decision: 0 below `share` of plain PNG (the model, untried), infinity above plain PNG
    (the smallest classic codec, whatever the model's exact cost)."""
    if look is None:
        return estimate
    model_wins = estimate * QUICK_MARGIN < share * png_bytes
    classic_wins = estimate > QUICK_MARGIN * (png_bytes + TABLE_COST)
    costs = np.where(classic_wins, np.inf, 0.0)
    unsure = np.flatnonzero(~(model_wins | classic_wins))
    if len(unsure):
        costs[unsure] = look.exact(which[unsure]) / 8
    return costs


def route_stacks(model, stacks: list[tuple[object, str, int]], settings, cores: int, on_images=None):
    """For a model of any size (a tiled model), the stacks given as (images (N, H, W[, C]) as
    read, their mode, bytes each costs beside the model's codelength: an alpha plane's blob):
    yields (stack, first image, chosen, intervals) of each chunk of images in order, `chosen`
    {index in the chunk: (codec, blob)} of the images the classic codecs keep smaller than the
    model codes their tiles, `intervals` the model's of the chunk's tiles (TileIntervals) where
    they were computed for its codelength (route_chunk_of_tiles), else None. A large image is a
    job of its own, small ones go in chunks of about CHUNK_PIXELS, so that a folder of photos,
    or an array of many small images, is judged on every core. Each image's model cost also
    takes its share of what the model stream costs beside the images' codelengths
    (_stream_bytes): paid only if some image goes to the model, it decides a lone image's
    close call."""
    codes = model.config.codes
    spans = [(number, lo, hi) for number, (images, _, _) in enumerate(stacks)
             for lo, hi in block_bounds(len(images), _images_per_chunk(codes, images.shape[1:3]))]
    count = max(1, sum(len(images) for images, _, _ in stacks))
    shares = [_stream_bytes(model, images.shape[1:3]) / count for images, _, _ in stacks]
    jobs = (Job(route_chunk_of_tiles, (stacks[number][0][lo:hi], stacks[number][1], stacks[number][2] + shares[number],
                                       settings), hi - lo) for number, lo, hi in spans)
    results = run_in_order(model, jobs, cores, on_images, window=WINDOW_CHUNKS * cores)
    for (number, lo, _), (chosen, intervals) in zip(spans, results):
        yield number, lo, chosen, intervals


STREAM_FRAMING = 140  # bytes of a model stream's own: its magic and deflated header, a block's length and digest


def _stream_bytes(model, image_shape) -> int:
    """What a tiled model's stream of one block of images of this shape costs beside their
    codelengths: its framing, and the first tile's lanes, which start on virtual words (4 bytes
    each; later tiles' lanes start on words earlier tiles pushed: models/stream.py), fewer for
    images smaller than a tile (coded as tiles of a smaller square)."""
    square = model.block_square(model.config.codes.unit_extents(*image_shape, 1))
    return STREAM_FRAMING + 4 * (square.model if square else model).lanes_per_unit


def _images_per_chunk(codes, image_shape) -> int:
    """Images of this shape a job judges: about CHUNK_PIXELS of their tiles (what the network
    runs over, and what their intervals take, 8 bytes a value: a 32x32 image is a whole tile)."""
    tile_pixels = codes.units_per_image(*image_shape) * codes.tile * codes.tile
    return max(1, min(CHUNK_IMAGES, CHUNK_PIXELS // tile_pixels))


def route_chunk_of_tiles(model, images: np.ndarray, mode: str, extra_bytes: float, settings, on_images=None):
    """({index: (codec, blob)}, intervals): the images (of one size, in `mode`) whose smallest
    faithful classic encoding is smaller than the model's codelength for their tiles plus
    `extra_bytes` (what the model's image needs beside its codelength: an alpha plane's blob),
    and the (start, freq) of all their tiles from which that codelength was taken, for the
    encoder to reuse (a model without a latent codes tiles by their pixels alone: models/
    frozen_tiled_ar.py), or None (a model with a latent; an image too large to keep them for)."""
    codes = model.config.codes
    height, width = images.shape[1:3]
    judged = [_judged(model, image[None], mode, extra_bytes, settings) for image in images] \
        if _sampled_bands(height, min(BAND_ROWS, codes.tile)) is not None else [_judged(model, images, mode, extra_bytes, settings)]
    chosen = {}
    for offset, (found, _) in enumerate(judged):  # one part of all the images, or one part an image
        chosen.update({offset + index: codec_and_blob for index, codec_and_blob in found.items()})
    intervals = [intervals for _, intervals in judged]
    if on_images:
        on_images(len(images))
    if any(part is None for part in intervals):
        return chosen, None
    return chosen, TileIntervals.joined(intervals)


KEEP_IMAGE_INTERVALS = 1 << 26  # bytes of one image's intervals the fallback computes whole and hands on


def _judged(model, images: np.ndarray, mode: str, extra_bytes: float, settings):
    """({index: (codec, blob)} of those the classic codecs keep smaller, intervals or None) of
    images of one size: all of them judged whole, or one large image judged first on bands
    (SAMPLE_EVERY). Where the model has no latent and the intervals fit KEEP_IMAGE_INTERVALS,
    every tile's are computed (the encoder needs them all anyway) and handed on."""
    codes = model.config.codes
    precision = settings.likelihood_precision
    height, width = images.shape[1:3]
    extents = codes.unit_extents(height, width, len(images))
    symbols = model.to_symbols(codes.to_units(colour_of(images, mode)))[0]
    intervals = None
    if not model.has_latent and 8 * symbols.size <= KEEP_IMAGE_INTERVALS * len(images):
        intervals = model.intervals(symbols, precision, extents)
    band = BAND_ROWS if intervals is not None else codes.tile
    sampled = _sampled_bands(height, band)
    if sampled is None:
        bits = model.codelength_bits(symbols, settings, extents) if intervals is None else \
            model.codelength_of(intervals.freq, precision, extents)
        costs = bits.reshape(len(images), -1).sum(axis=1) / 8 + extra_bytes
        codecs = _ChunkCodecs()
        chosen = {index: _classic_if_smaller(model_image(image, mode), cost, codes.defaults.quick_share, codecs=codecs)
                  for index, (image, cost) in enumerate(zip(images, costs.tolist()))}
        return {index: found for index, found in chosen.items() if found is not None}, intervals
    pixels = images[0]
    if intervals is None:  # bands are rows of tiles
        columns = tile_grid(height, width, codes.tile)[1]
        tiles = np.concatenate([np.arange(row * columns, (row + 1) * columns) for row in sampled])
        sampled_bits = model.codelength_bits(symbols[tiles], settings, extents[tiles]).sum()
        rest = np.setdiff1d(np.arange(len(symbols)), tiles)
        total_bits = sampled_bits + model.codelength_bits(symbols[rest], settings, extents[rest]).sum()
    else:
        row_bits = _row_bits(model, intervals.freq, precision, extents, height, width, codes.tile)
        sampled_bits = sum(row_bits[row * band : (row + 1) * band].sum() for row in sampled)
        total_bits = model.codelength_of(intervals.freq, precision, extents).sum()
    # the extra bytes in proportion to the rows sampled
    sampled_share = min(height, len(sampled) * band) / height
    codecs = _close_on_the_sample(pixels, mode, band, sampled, sampled_bits / 8 + extra_bytes * sampled_share)
    if not codecs:
        return {}, intervals
    # The whole image by those codecs.
    found = classic.smallest_faithful(model_image(pixels, mode), total_bits / 8 + extra_bytes - TABLE_COST, codecs=codecs)
    return ({0: found} if found else {}), intervals


def _sampled_bands(height: int, band: int) -> list[int] | None:
    """The bands (of `band` rows) an image is judged on first, or None for an image of fewer
    than SAMPLED_BANDS of them."""
    bands = -(-height // band)
    return None if bands < SAMPLED_BANDS else list(range(1, bands, SAMPLE_EVERY))


def _row_bits(model, freq: np.ndarray, precision: int, extents: np.ndarray, height: int, width: int, tile: int) -> np.ndarray:
    """The model's bits of each row of an image's pixels, from its tiles' intervals."""
    bits = model.pixel_bits(freq, precision, extents).reshape(-1, tile, tile)
    return from_tiles(bits, height, width).sum(axis=1)


def _close_on_the_sample(pixels: np.ndarray, mode: str, rows: int, sampled: list[int], model_bytes: float) -> tuple[str, ...]:
    """The classic codecs that code the sampled bands (each of `rows` rows of pixels, an image
    of its own) in at most SAMPLE_MARGIN over the model's `model_bytes` for them."""
    sizes = {}
    for row in sampled:
        band = model_image(np.ascontiguousarray(pixels[row * rows : (row + 1) * rows]), mode)
        for codec, blob in classic.encodings(band):
            sizes[codec] = sizes.get(codec, 0) + len(blob)
    return tuple(codec for codec, size in sizes.items() if size <= (1 + SAMPLE_MARGIN) * model_bytes)


def _classic_if_smaller(image: Image.Image, cost: float, share: float, plain: bytes | None = None,
                        codecs: "_ChunkCodecs | None" = None) -> tuple[str, bytes] | None:
    """(codec, blob) of the image's smallest faithful classic encoding if it, with its table
    cost, is smaller than the model's `cost` (bytes); not tried when the model's cost is under
    `share` of the image's plain PNG size (`plain`, if made already). `codecs`: the chunk's
    (which codecs it tries, from what the chunk's earlier images gave), or None: all."""
    if cost < share * SMALLEST_PNG:  # under `share` of any PNG: no need to make this one
        return None
    plain = plain or classic.plain_png(image)  # a large image's PNG candidate too: made once
    if cost < share * len(plain):
        return None
    codecs = codecs if codecs is not None else _ChunkCodecs()  # (an image judged on its own: every codec)
    sizes = {}
    found = classic.smallest_faithful(image, below=cost - TABLE_COST, plain=plain, codecs=codecs.to_try(), sizes=sizes)
    codecs.tried(sizes)
    return found


class _ChunkCodecs:
    """Which classic codecs the images of one chunk try. A chunk's images are mostly alike (a
    folder's digits, an array's frames), and where the model loses, trying every codec on every
    image is most of the fallback's time (JPEG XL alone 0.4 to 0.7 ms a digit, where it never
    wins on noisy ones). Every codec is tried on the first SAMPLE_TRIES images that come to the
    classic codecs and on one in RESAMPLE_EVERY after them; a codec that on each of those came
    out more than SKIP_MARGIN larger than the smallest is left out for the others, and taken
    back once it comes within the margin. Chunks are cut the same for any number of cores, so
    the choices, and the archive, are the same too."""

    def __init__(self):
        self._tries = 0  # images that came to the classic codecs
        self._close = dict.fromkeys(classic.CODECS, False)  # within the margin of the smallest on some try

    def to_try(self) -> tuple[str, ...]:
        if self._tries < SAMPLE_TRIES or self._tries % RESAMPLE_EVERY == 0:
            return classic.CODECS
        return tuple(codec for codec in classic.CODECS if self._close[codec])

    def tried(self, sizes: dict[str, int]) -> None:
        """What an image's encodings came to (`sizes`: bytes by codec, of those tried)."""
        self._tries += 1
        if sizes:
            bound = min(sizes.values()) * (1 + SKIP_MARGIN)
            for codec, size in sizes.items():
                self._close[codec] = self._close[codec] or size <= bound
