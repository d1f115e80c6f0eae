"""The Python API (models.api): round trips, refusals, and records that lie about themselves."""
import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from bbzip.models import api


def _with_header(record: bytes, change) -> bytes:
    """The record with its header changed by `change(dict)`, framing and crc recomputed."""
    start = len(api.MAGIC) + 4
    length = struct.unpack_from("<I", record, len(api.MAGIC))[0]
    header = api.inflate_header(record[start : start + length])
    change(header)
    new = api.deflate_header(header)
    return b"".join([api.MAGIC, struct.pack("<I", len(new)), new, struct.pack("<I", zlib.crc32(new)),
                     record[start + length + 4 :]])


def test_round_trip_with_a_named_model(grey_test_images):
    images = grey_test_images[:40]
    record = api.compress(images, model="mlp-mnist-baseline", k_steps=1, seed=5)
    info = api.read_record(record)
    assert info.model["name"] == "mlp-mnist-baseline" and info.settings.k_steps == 1 and info.settings.seed == 5
    np.testing.assert_array_equal(api.decompress(record), images)


def test_images_a_model_cannot_code_are_refused(grey_test_images):
    with pytest.raises(api.StreamError, match="does not code"):
        api.compress(grey_test_images[:5], model="mlp-binary-mnist-rha")  # grey images, binary model
    with pytest.raises(api.StreamError, match="no shipped model"):
        api.compress(np.zeros((2, 30, 30, 2), dtype=np.uint8))  # two channels


def test_grey_images_of_other_sizes_go_to_the_grey_photo_model(grey_test_images):
    """28x28 digits stay with the MNIST default; grey images of another size go to the grey
    model of any size (before it shipped, no default coded them)."""
    images = np.ascontiguousarray(np.tile(grey_test_images[:2], (1, 2, 2))[:, :45, :50])
    record = api.compress(images)
    assert api.read_record(record).model["name"] == "tiled-grey-photos-mixture-large"
    np.testing.assert_array_equal(api.decompress(record), images)
    assert api.read_record(api.compress(grey_test_images[:2])).model["name"] == "ar-mnist-rha"


def test_a_record_claiming_millions_of_images_fails_fast_without_allocating_them(grey_test_images):
    """A lying image count (2^24 images would be 13 GB of pixels) runs out of stream words at once."""
    record = _with_header(api.compress(grey_test_images[:20]), lambda h: h.update(images=1 << 24))
    tracemalloc.start()
    try:
        with pytest.raises(api.StreamError):
            api.decompress(record)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 20  # bytes (numpy's allocations are traced too)


@pytest.mark.parametrize("change, message", [
    (lambda h: h.update(images=-1), "image count"),
    (lambda h: h["coding"].update(batch_size=0), "batch_size"),
    (lambda h: h["coding"].update(k_steps=10**9), "k_steps"),
    (lambda h: h["coding"].update(bucket_bits=40), "bucket_bits"),
    (lambda h: h["coding"].pop("lr"), "exactly the keys"),
    (lambda h: h.update(scale=7), "scale"),
    (lambda h: h.update(extra=1), "unexpected header fields"),
    (lambda h: h["model"].update(sha256="0" * 64), "not installed"),
    (lambda h: h.update(block_tiles="whole"), "unknown block tiles"),
])
def test_headers_out_of_their_schema_are_refused(grey_test_images, change, message):
    record = _with_header(api.compress(grey_test_images[:10]), change)
    with pytest.raises(api.StreamError, match=message):
        api.decompress(record)


def test_blocks_are_independent_and_the_same_for_any_number_of_cores(grey_test_images):
    """30 images in blocks of 8: 4 blocks, the same bytes coded on 1 or 3 cores; block 2 alone
    decodes to images 16..23, and a damaged block 1 leaves the others intact. (Checked to fail:
    with blocks cut by the number of cores, 3 cores wrote other bytes.)"""
    images = grey_test_images[:30]
    one, three = (api.compress(images, model="mlp-mnist-rha", block_images=8, cores=n) for n in (1, 3))
    assert one == three
    info = api.read_record(one)
    assert [(b.first, b.count) for b in info.blocks] == [(0, 8), (8, 8), (16, 8), (24, 6)]
    coder = api.coder_for(info, None)
    (block_2,) = api.decode_blocks(info, coder, which=[2], cores=1)
    np.testing.assert_array_equal(block_2, images[16:24])
    message = info.blocks[1].message.read()
    damaged = bytearray(one)
    damaged[one.index(message) + len(message) // 2] ^= 0x40
    results = list(api.decode_blocks(api.read_record(bytes(damaged)), coder, cores=2))
    assert isinstance(results[1], str) and "damaged" in results[1]
    for number in (0, 2, 3):
        np.testing.assert_array_equal(results[number], images[8 * number : 8 * number + 8])
    with pytest.raises(api.StreamError, match="block 1"):
        api.decompress(bytes(damaged))


def test_the_record_is_written_block_by_block_as_blocks_are_coded(grey_test_images):
    """What bounds compress's memory: the record goes out through `write` block by block, and
    no block's images are taken for coding more than the window (two per core) ahead of the
    block written next; the bytes are those of api.compress on one core. (Checked to fail with
    every block coded before the first write.)"""
    from bbzip.models.coder_choice import default_settings, load_coder

    images = grey_test_images[:40]
    expected = api.compress(images, model="mlp-mnist-rha", block_images=4, cores=1)
    coder = load_coder("mlp-mnist-rha")
    settings = default_settings(coder, len(images), block_images=4)
    firsts, written_at = set(), []

    class Watched:  # the images, noting which blocks' images have been taken
        def __len__(self):
            return len(images)

        def __getitem__(self, span):
            firsts.add(span.start)
            return images[span]

    pieces = []

    def write(data: bytes) -> int:
        written_at.append(len(firsts))
        pieces.append(data)
        return len(data)

    length = api.write_record(write, coder, Watched(), settings, block_images=4, cores=2)
    assert length == sum(map(len, pieces)) and b"".join(pieces) == expected
    blocks_written_at = written_at[1:]  # after the header: one write per block, 10 blocks
    assert len(blocks_written_at) == 10
    for block, at in enumerate(blocks_written_at):
        assert at <= block + 1 + 4, (block, at)  # window: 2 cores x 2
    assert blocks_written_at[0] < 10


def test_a_bernoulli_record_keeps_one_scale_for_all_its_blocks(grey_test_images):
    """0/255 images whose first block is all black: the record's scale is still 255, and every
    block round-trips (a block's own scale would be 1 and its digest would not match)."""
    images = ((grey_test_images[:12] >= 128) * 255).astype(np.uint8)
    images[:4] = 0
    data = api.compress(images, model="mlp-binary-mnist-rha", block_images=4, cores=1)
    assert api.read_record(data).scale == 255
    np.testing.assert_array_equal(api.decompress(data), images)


def test_the_coding_path_does_not_import_torch():
    """Coding and decoding (the API, the archive commands, every frozen architecture) run
    without torch: importing it costs ~200 MB of memory per process. (Checked to fail: the
    local autoregressive model's frozen form once imported its torch module for its config.)"""
    import subprocess
    import sys

    code = ("import sys, models.api, models.architectures, cli.archive_commands; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_input_of_several_blocks_is_cut_into_equal_ones():
    """So that 2 or 4 cores finish together: two blocks or a multiple of two, from four blocks a
    multiple of four; an input of half a block to one block is cut in two, and one of less keeps
    the plain block size. (10,000 grey images made blocks of 8,192 and 1,808: two cores waited
    on the large one; 10,000 binary ones made one block: one core did it all.)"""
    from bbzip.models.blocks import block_bounds
    from bbzip.models.coder_choice import default_block_images, load_coder

    grey, binary = load_coder("mlp-mnist-rha"), load_coder("mlp-binary-mnist-rha")
    assert default_block_images(grey, 4_000) == 8192 and default_block_images(binary, 8_000) == 16384
    for coder, n, blocks in ((grey, 10_000, 2), (grey, 20_000, 4), (binary, 40_000, 4), (grey, 70_000, 12), (grey, 32_768, 4),
                             (grey, 32_769, 8), (binary, 70_000, 8), (grey, 8_000, 2), (binary, 10_000, 2), (binary, 16_000, 2)):
        bounds = block_bounds(n, default_block_images(coder, n))
        sizes = [hi - lo for lo, hi in bounds]
        assert len(bounds) == blocks and max(sizes) - min(sizes) < blocks, (n, sizes)


def test_k_step_inference_cuts_a_small_input_in_two_by_its_work():
    """At K steps an image is about 1 + K images' worth of coding: 2,000 binary digits at K = 10
    make two blocks for two cores (they made one, which one core coded alone). A model without a
    latent has no K steps to count; an input too small to cut, or large enough to be cut
    already, keeps its blocks (each costs bytes)."""
    from bbzip.models.coder_choice import default_block_images, load_coder

    binary, photos = load_coder("ar-binary-mnist-rha"), load_coder("tiled-rgb-photos-mixture-large")
    assert not photos.model.has_latent and binary.model.has_latent
    assert default_block_images(binary, 2_000) == 16384 and default_block_images(binary, 2_000, k_steps=10) == 1_000
    assert default_block_images(binary, 40_000, k_steps=10) == default_block_images(binary, 40_000) == 10_000
    assert default_block_images(photos, 300, k_steps=10) == default_block_images(photos, 300)
    assert default_block_images(binary, 48, k_steps=2) == 16384


def test_a_one_block_stream_of_bbzip_0_2_names_the_formats_this_bbzip_reads():
    """0.2's stream header had no block_images; the message said "reads format 4" when this
    bbzip reads formats 4 and 5."""
    from bbzip.models.api import HEADER_FIELDS, MAGIC, StreamError, read_record

    header = zlib.compress(json.dumps({field: 0 for field in HEADER_FIELDS - {"block_images"}}).encode())
    record = MAGIC + struct.pack("<I", len(header)) + header + struct.pack("<I", zlib.crc32(header))
    with pytest.raises(StreamError, match="archive format 4 and later"):
        read_record(record)


def test_of_two_defaults_that_code_as_many_pixels_the_narrower_is_taken(grey_test_images):
    """Digits beside a small RGB image: no default codes both, and the MNIST model and the grey
    model of any size code as many pixels (the digits): the MNIST model is taken."""
    from bbzip.models.coder_choice import pick_default_for_most

    stacks = [grey_test_images[:100], np.zeros((1, 10, 10, 3), dtype=np.uint8)]
    assert pick_default_for_most(stacks).name == "ar-mnist-rha"


def _framed_blocks(record: bytes) -> tuple[bytes, list[bytes]]:
    """The record's bytes before its blocks, and each block as framed (length, message, digest)."""
    info = api.read_record(record)
    first = info.blocks[0].message
    start = record.index(first.read()) - 4
    blocks, position = [], start
    for block in info.blocks:
        size = 4 + len(block.message.read()) + 32
        blocks.append(record[position : position + size])
        position += size
    return record[:start], blocks


@pytest.mark.parametrize("forgery", ["swapped", "repeated"])
def test_a_block_moved_or_repeated_does_not_decode(grey_test_images, forgery):
    """0.2: each block's digest covered its images, not its place: two blocks swapped byte for
    byte decoded with images 0..7 and 8..15 exchanged, no error. The digest binds the block's
    index (api.BLOCK_DIGEST)."""
    record = api.compress(grey_test_images[:24], model="mlp-mnist-rha", block_images=8, cores=1)
    head, blocks = _framed_blocks(record)
    blocks = [blocks[1], blocks[0], blocks[2]] if forgery == "swapped" else [blocks[0], blocks[0], blocks[2]]
    with pytest.raises(api.StreamError, match="block [01]: decoded images do not match"):
        api.decompress(head + b"".join(blocks))


def test_the_default_for_most_judges_each_stack_by_its_own_values(grey_test_images):
    """Stacks are judged once per kind (dtype, image shape, two-valued scale): one-image stacks
    of 0/1 and of 0/255 digits all go to the binary model (the narrower of two that code as many
    pixels), and one stack among them that is not two-valued (0, 1 and 255 together) or is grey
    takes them all to the grey model."""
    from bbzip.models.coder_choice import pick_default_for_most

    binary = [(image >= 128).astype(np.uint8)[None] * scale for image, scale in zip(grey_test_images[:40], [1, 255] * 20)]
    assert pick_default_for_most(binary).name == "ar-binary-mnist-rha"
    assert pick_default_for_most(binary + [np.concatenate(binary[:2])]).name == "ar-mnist-rha"
    assert pick_default_for_most(binary + [grey_test_images[40:41]]).name == "ar-mnist-rha"
    # and for each stack, whether the model chosen codes it, as that model's own test says
    from bbzip.models.coder_choice import default_for_most

    stacks = binary + [np.concatenate(binary[:2]), grey_test_images[40:41], np.zeros((1, 5, 7), np.uint8)]
    coder, accepted = default_for_most(stacks)
    assert accepted == [coder.model.config.codes.accepts(stack) for stack in stacks]
    assert coder.name == "ar-mnist-rha" and accepted[-1] is False and all(accepted[:-1])


def test_the_record_header_deflates_with_its_dictionary_and_old_headers_still_read(grey_test_images):
    """Format 7: the header's JSON, primed with typical headers, keeps little more than the
    model's sha256 and the counts; a header deflated without the dictionary (every record before
    format 7) still reads."""
    import hashlib
    import json

    from bbzip.models.record_dictionary import RECORD_DICTIONARY

    assert hashlib.sha256(RECORD_DICTIONARY).hexdigest() == "8e4f109613e43ad00b3031440a7d8896206b180f6132a4570a3e815a07c650e6"
    record = api.compress(grey_test_images[:3], model="ar-mnist-rha")
    length = struct.unpack_from("<I", record, len(api.MAGIC))[0]
    header = api.inflate_header(record[len(api.MAGIC) + 4 : len(api.MAGIC) + 4 + length])
    plain = zlib.compress(json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), 9)
    assert length < 0.5 * len(plain)
    start = len(api.MAGIC) + 4
    old = b"".join([api.MAGIC, struct.pack("<I", len(plain)), plain, struct.pack("<I", zlib.crc32(plain)),
                    record[start + length + 4 :]])
    np.testing.assert_array_equal(api.decompress(old), grey_test_images[:3])


def test_blocks_checked_where_they_were_coded_are_not_decoded_or_sent_again(grey_test_images):
    """write_record's check decodes each block where it is coded and gives each message's
    sha256; decode_blocks, given those, takes a block whose message has that digest as its
    images (still checked against the block's sha256) without sending it to an executor, and
    sends any other block to be decoded."""
    from concurrent.futures import Future

    from bbzip.models import scheduler
    from bbzip.models.coder_choice import default_settings, load_coder

    images = grey_test_images[:24]
    coder = load_coder("mlp-mnist-rha")
    settings = default_settings(coder, len(images), block_images=8)
    record, checked = bytearray(), []
    api.write_record(lambda data: record.extend(data) or len(data), coder, images, settings, block_images=8, cores=1,
                     checked=checked)
    assert bytes(record) == api.compress(images, model="mlp-mnist-rha", block_images=8, cores=1) and len(checked) == 3
    sent = []

    class Recording:  # an executor that runs each job it is sent here, noting it
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def submit(self, job):
            sent.append(job.function.__name__)
            future = Future()
            future.set_result(job.function(coder.model, *job.args))
            return future

    info = api.read_record(bytes(record))
    other = list(checked)
    other[1] = bytes(32)  # a block whose message is not the one checked
    for digests, decoded in ((checked, []), (other, ["_decode_one"])):
        sent.clear()
        with scheduler.executing_on(lambda model: Recording()):
            results = list(api.decode_blocks(info, coder, cores=2, expected_images=images, checked=digests))
        assert sent == decoded
        np.testing.assert_array_equal(np.concatenate(results), images)
