"""`bbzip compress`, `decompress`, `test` and `list`."""
from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import click

from bbzip.models.architectures import NUMERICS_VERSION
from bbzip.models import scheduler
from bbzip.models.cluster import ClusterError, on_cluster
from bbzip.models.coder_choice import default_settings, fits_a_default, load_coder
from bbzip.models.coding_settings import CodingSettings, SettingsError
from bbzip.models.files import ByteSource, atomic_write, leftover_prefix
from bbzip.models.blocks import MAX_BLOCK_IMAGES
from bbzip.models.threads import available_cores

from . import coding, comparison, remote
from .archive import ArchiveError, archive_head, read_archive
from .console import output_options
from .entries import KINDS, input_fingerprint
from .entry_log import item_counts, stacked_items
from .inputs import Inputs
from .errors import BBZipError, guard, refuse_overwrite
from .placing import Staging, check_room
from .reading import read_inputs
from .table import has_alpha_blob
from .spool import Spool


@contextmanager
def _opened(source: str):
    """The archive at `source` (a file, or - for stdin, spooled to a temporary file): its table
    read and checked, its payload read later where it is needed."""
    if source == "-":
        if sys.stdin.isatty():
            raise click.UsageError("refusing to read an archive from a terminal")
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
            spool.flush()
            yield _read(ByteSource.of_file(spool), source)
        return
    path = remote.local_path(source)
    if path is None:
        with remote.opened(source) as data:
            yield _read(data, source)
        return
    if not Path(path).is_file():
        raise BBZipError(f"{source}: no such file")
    with open(path, "rb") as f:
        yield _read(ByteSource.of_file(f), source)


def _read(data: ByteSource, name: str):
    try:
        return read_archive(data, name)
    except ArchiveError as error:
        raise BBZipError(str(error)) from None


def threads_option(command):
    return click.option("-T", "--threads", type=click.IntRange(1, 1024), default=available_cores(), show_default="all cores",
                        help="Code blocks on this many cores (the archive is the same for any number).")(command)


def cluster_option(command):
    """--cluster ADDRESS: the command's jobs (fallback chunks, blocks) go to a Dask cluster's
    workers, as many in flight as it has worker threads (in place of -T); the archive is the
    one the local pool writes."""
    @functools.wraps(command)
    def on_cluster_if_asked(*args, cluster=None, threads=None, **kwargs):
        if cluster is None:
            return command(*args, threads=threads, **kwargs)
        try:
            with on_cluster(cluster) as lanes:
                return command(*args, threads=lanes, **kwargs)
        except ClusterError as error:
            raise BBZipError(str(error)) from None

    return click.option("--cluster", metavar="ADDRESS",
                        help="Code on the workers of a Dask cluster: its scheduler (tcp://host:8786) or scheduler file "
                             "(.json). Its workers read the input files where they see them, else are sent their bytes. "
                             "Needs the cluster extra.")(on_cluster_if_asked)


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _write_archive_file(path: Path, write_checked, force: bool) -> None:
    """write_checked(temporary path) writes and checks the archive; then it is put in place.
    Without `force` the archive is created exclusively, so a file that appeared while
    compressing, or another compress to the same name, is never overwritten."""
    try:
        atomic_write(path, write_checked, exclusive=not force)
    except FileExistsError:
        raise BBZipError(f"{path}: appeared while compressing; not overwritten (use -f)") from None


def _write_archive(target, head: bytes, payload) -> None:
    """The archive into the binary file `target`: its head, then the payload file copied over."""
    target.write(head)
    payload.seek(0)
    shutil.copyfileobj(payload, target, 1 << 20)


def _verify(path, entries, coder, on_batch, cores: int, checked: list) -> tuple[int, int]:
    """Decode the archive just written to `path`, as `decompress` will, and compare what every
    entry gives back (its pixels with their mode, or its bytes) with what was read: compress
    never exits 0 with an archive that does not give back exactly its input. (The files
    themselves are not encoded again: what is compared is what they are made from.) Entries are
    decoded and compared one at a time. The model's blocks were decoded where they were coded,
    as decompress decodes them but knowing the images they should hold (coding.build's
    `checked`); here each block's message as read back must be the one that was checked there
    (its sha256), else it is decoded again, and its images must match the block's sha256.
    Returns coding.stream_images of the archive."""
    model_images = stacked_items(entries)
    try:
        with open(path, "rb") as f:
            archive = read_archive(ByteSource.of_file(f))
            readers = coding.extract_each(archive, coder, on_batch, cores=cores, expected_images=model_images,
                                          checked=checked)
            for entry, reader in zip(entries, readers, strict=True):
                why = reader.restore(None)
                if entry.stamp is not None:  # its images were read from it as needed: all from the same file
                    entry.stamp.check_path()
                if why is not None:
                    raise BBZipError(f"{entry.name}: internal error: the archive would not decode it ({why}); nothing was written")
                if reader.name != entry.name or reader.sha256 != input_fingerprint(entry).sha256:
                    raise BBZipError(f"{entry.name}: internal error: the archive would not decode it to what was read; "
                                     "nothing was written")
            return coding.stream_images(archive)
    except (ArchiveError, ValueError) as error:  # ValueError: zip(strict) on a count mismatch
        raise BBZipError(f"internal error: the archive would not decode ({error}); nothing was written") from None


def _model_items(archive) -> int:
    return archive.header.get("model_stream", {}).get("items", 0)


def _check_coding_options(k_steps, lr, seed, batch_size) -> None:
    """Usage errors (exit 2) before any input is read: the bounds of models.CodingSettings."""
    try:
        CodingSettings(k_steps=k_steps, lr=lr, seed=seed, batch_size=1 if batch_size is None else batch_size)
    except SettingsError as error:  # "k_steps must be ..." -> "--k-steps must be ..."
        name, _, rest = str(error).partition(" ")
        raise click.UsageError(f"--{name.replace('_', '-')} {rest}") from None


@click.command("compress")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True,
              help="Archive to write: a path, a URL (s3://..., memory://...; needs the remote extra), or - for stdout.")
@click.option("--model", "model_spec", help="A shipped model's name or a .safetensors file (default: the shipped model that fits).")
@click.option("--k-steps", default=0, show_default=True, help="Optimise each posterior for K Adam steps (paper Algorithm 2).")
@click.option("--lr", default=5e-3, show_default=True, help="Learning rate of the K steps.")
@click.option("--batch-size", type=int, help="Images coded side by side [default: 1 per 20 binary / 2 grey images, 16 to 1000].")
@click.option("--seed", default=0, show_default=True, help="Seed of the initial bits and the K-step noise.")
@click.option("--block-images", type=click.IntRange(1, MAX_BLOCK_IMAGES),
              help="Images per block of the model stream [default: about 16384 binary, 8192 grey; "
                   "a large input in a multiple of 4 equal blocks].")
@click.option("--fallback/--no-fallback", default=True, show_default=True,
              help="Keep an image with a classic codec (PNG, WebP, JPEG XL) where that is smaller than the model's code for it.")
@click.option("--exact-times", is_flag=True, help="Keep modification times to the nanosecond (default: to the second, as tar and zip).")
@click.option("--compare", is_flag=True, help="Also show what the images would take as PNG files and as JPEG XL files.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT.")
@threads_option
@click.pass_obj
@output_options
@guard
@cluster_option
def compress_command(out, inputs, output, model_spec, k_steps, lr, batch_size, seed, block_images, fallback, exact_times,
                     compare, force, threads):
    """Compress image files, folders and .npy/.npz arrays of uint8 images (local paths, or URLs
    fsspec reaches) into one archive."""
    if output == "-" and sys.stdout.isatty():
        raise click.UsageError("refusing to write an archive to a terminal (use -o FILE)")
    _check_coding_options(k_steps, lr, seed, batch_size)
    local = remote.local_path(output)
    url, output = (output, None) if local is None else (None, local)
    if url:
        remote.refuse_overwrite(url, force)
    else:
        refuse_overwrite(Path(output), force)
    coder = load_coder(model_spec) if model_spec else None
    # Temporary files go beside the output (its file system has room for the archive): inputs
    # fetched from URLs, the bytes of stored files and classic images from when they are read,
    # then the payload.
    spool_folder = None if output == "-" or url else Path(output).resolve().parent
    with remote.fetched(list(inputs), spool_folder, out, workers_read=scheduler.elsewhere()) as local_inputs:
        _compress(out, local_inputs, url, output, coder, spool_folder, k_steps, lr, batch_size, seed, block_images,
                  fallback, exact_times, compare, force, threads)


def _compress(out, inputs, url, output, coder, spool_folder, k_steps, lr, batch_size, seed, block_images, fallback,
              exact_times, compare, force, threads):
    with out.bar("listing", None, "files") as advance:  # (no total: the files are being counted)
        found = Inputs(inputs, advance)
    if found.skipped:
        out.warn(f"left out {_count(found.skipped, 'special file')} (named pipes, sockets, devices), "
                 f"first {found.first_skipped}")
    fits = coding.fits(coder.model) if coder else fits_a_default()
    with tempfile.TemporaryFile(dir=spool_folder) as spooled_blobs:
        spool = Spool(spooled_blobs)
        entries = read_inputs(out, found, fits, exact_times, spool, threads)
        if compare:  # before a model is chosen: image files it does not code are still images here
            with out.bar("comparing", int(item_counts(entries).sum())) as advance:
                groups = comparison.classic_sizes(entries, advance)
        if coder is None:
            coder, entries = coding.choose_default(entries, spool)
        candidates = int(item_counts(entries).sum())

        def settings_for(n_images: int):
            return default_settings(coder, n_images, k_steps=k_steps, lr=lr, seed=seed, batch_size=batch_size,
                                    block_images=block_images) if coder else None

        started = time.perf_counter()
        if candidates and fallback:
            with out.bar("choosing", candidates) as advance:  # model or classic, image by image
                entries = coding.prepare(entries, coder, settings_for(candidates), spool, True, threads, advance)
        elif candidates:
            entries = coding.prepare(entries, coder, settings_for(candidates), spool, False)
        n_items = int(item_counts(entries).sum())
        settings = settings_for(n_items)
        if compare:
            codelengths = comparison.model_codelengths(entries, coder.model, settings) if n_items else [0.0] * len(entries)
        # The payload goes to a temporary file as it is coded, the archive is written from it and
        # checked by decoding it from disk, and only then put in place (or sent to stdout).
        with tempfile.TemporaryFile(dir=spool_folder) as payload:
            unit = "tiles" if coder and coder.model.config.codes.any_size else "images"
            checked = []  # each model block's message's sha256, as it was checked where it was coded
            with out.bar("compressing", n_items, unit) as advance:
                header = coding.build(entries, coder, settings, payload, on_batch=advance, cores=threads,
                                      block_images=block_images, checked=checked)
            head = archive_head(header)
            head_length = len(head)
            in_stream = []  # (images, values) of the model stream, as the archive written says
            if compare:  # (the entries' table is made from them: read while the spool is open)
                comparison.add_archive_bytes(groups, entries, header, codelengths)

            def write_checked(path) -> None:
                nonlocal head
                with open(path, "wb") as target:
                    _write_archive(target, head, payload)
                head = None  # (written once; a million files' table is 32 MB, and the check reads its own)
                with out.bar("verifying", n_items, unit) as advance:
                    in_stream.append(_verify(path, entries, coder, advance, threads, checked))

            if output == "-":
                with tempfile.NamedTemporaryFile(prefix=leftover_prefix()) as whole:
                    write_checked(whole.name)
                    whole.seek(0)
                    shutil.copyfileobj(whole, sys.stdout.buffer, 1 << 20)
                sys.stdout.buffer.flush()
            elif url:
                remote.write(url, write_checked, force)
            else:
                _write_archive_file(Path(output), write_checked, force)
    archive_size = head_length + header["payload_length"]
    seconds = time.perf_counter() - started
    if coder and n_items:
        by_model, model_values = in_stream[0]
        stream_bpd = 8 * header["model_stream"]["length"] / model_values
        coded = f"{_count(by_model, 'image')} by {coder.name}"
        if coder.model.config.codes.any_size:  # items are tiles
            coded = f"{_count(by_model, 'image')} ({_count(n_items, 'tile')}) by {coder.name}"
        rate = f"{candidates / seconds:.0f} images/s" if candidates >= seconds else f"{seconds / candidates:.1f} s an image"
        out.info(f"{_count(len(entries), 'file')}, {coded} (K={k_steps}{_classic_note(candidates - by_model)}): "
                 f"{archive_size} bytes, model stream {stream_bpd:.4f} bpd, {rate} chosen, coded and checked")
    else:
        out.info(f"{_count(len(entries), 'file')}, {archive_size} bytes (no images for a model{_classic_note(candidates)})")
    if compare:
        for line in comparison.report(groups, archive_size):
            out.info(line)


def _classic_note(kept_classic: int) -> str:
    return f"; {_count(kept_classic, 'image')} smaller with a classic codec" if kept_classic else ""


@contextmanager
def _decoding(out, source: str, model_spec: str | None, threads: int, wanted=()):
    """(archive, iterator of coding.EntryReader) under a progress bar."""
    with _opened(source) as archive, out.bar("decompressing", _model_items(archive), _item_unit(archive)) as advance:
        try:
            yield archive, coding.extract_each(archive, model_spec, on_batch=advance, cores=threads, wanted=wanted)
        except ArchiveError as error:
            raise BBZipError(str(error)) from None


def _item_unit(archive) -> str:
    """What the model stream's items are, for the progress bar: images, or a photo model's tiles."""
    try:
        record = coding.model_description(archive)
    except (BBZipError, ArchiveError):  # reported where the stream is decoded
        return "items"
    return "tiles" if record and record.image_shape else "images"


def _damage_report(source: str, extraction: coding.Extraction) -> str:
    """One line: how many entries are damaged, which (the first few) and why (the first)."""
    names = [name for name, _ in extraction.lost]
    total = extraction.intact + len(names)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{source}: {len(names)} of {_count(total, 'entry', 'entries')} damaged: {shown} ({extraction.lost[0][1]})"


@click.command("decompress")
@click.argument("archive")
@click.argument("names", nargs=-1)
@click.option("-o", "--output", "output_dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the files into.")
@click.option("--model", "model_spec", help="The model file, if the archive's model is not a shipped one.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing files.")
@click.option("--salvage", is_flag=True, help="If some entries are damaged, still write the intact ones (exit 1).")
@threads_option
@click.pass_obj
@output_options
@guard
@cluster_option
def decompress_command(out, archive, names, output_dir, model_spec, force, salvage, threads):
    """Write the files of ARCHIVE (a path, a URL, or - for stdin) back, pixel-identical, under
    OUTPUT: all of them, or only NAMES (entries, or folders of entries; only the blocks that
    hold them are decoded, and only their parts of an archive at a URL are fetched)."""
    extraction = coding.Extraction()
    with _decoding(out, archive, model_spec, threads, names) as (opened, readers):
        chosen = coding.select(opened.names, names)
        if not force:  # names checked by the header schema
            for name in (opened.names[i] for i in chosen):
                if os.path.lexists(output_dir / name):
                    raise BBZipError(f"{output_dir / name}: already exists (use -f to overwrite)")
        entries = opened.header["entries"]
        check_room(output_dir, sum(KINDS[entries[i]["kind"]].least_bytes(entries[i]) for i in chosen))
        with Staging(output_dir, opened.names) as staging:
            # Each file is written to the staging folder as it is decoded (a large array a block
            # at a time), and the files go in place together at the end.
            for reader in readers:
                if salvage or not extraction.lost:
                    why = staging.add(reader)
                else:  # past a loss without --salvage: only checked, for the report
                    why = reader.restore(None)
                extraction.record(reader.name, why)
            if extraction.lost and not salvage:
                raise BBZipError(_damage_report(archive, extraction) + "; nothing was written (--salvage writes the intact ones)")
            staging.place()
    if extraction.lost:
        raise BBZipError(_damage_report(archive, extraction) + f"; the other {_count(extraction.intact, 'file')} "
                         f"written to {output_dir}")
    out.info(f"{_count(extraction.intact, 'file')} written to {output_dir}")


@click.command("test")
@click.argument("archive")
@click.option("--model", "model_spec", help="The model file, if the archive's model is not a shipped one.")
@threads_option
@click.pass_obj
@output_options
@guard
@cluster_option
def test_command(out, archive, model_spec, threads):
    """Decode everything in ARCHIVE (a path, a URL, or - for stdin) and check every checksum;
    write nothing. Names the damaged entries, if any."""
    extraction = coding.Extraction()
    with _decoding(out, archive, model_spec, threads) as (_, readers):
        for reader in readers:  # checked one at a time; nothing kept but the names
            extraction.record(reader.name, reader.restore(None))
    if extraction.lost:
        raise BBZipError(_damage_report(archive, extraction))
    out.info(f"{archive}: OK ({_count(extraction.intact, 'file')})")


@click.command("list")
@click.argument("archive")
@click.pass_obj
@output_options
@guard(reader_may_stop=True)
def list_command(out, archive):
    """Show the entries, model, coding settings and sizes of ARCHIVE without decoding it."""
    with _opened(archive) as parsed:
        _list(parsed, archive)


def _list(parsed, archive: str) -> None:
    header = parsed.header
    record = coding.model_description(parsed)
    total = parsed.payload.end if archive != "-" else None  # the payload is the archive's tail
    click.echo(f"archive: {archive}" + (f"  ({total} bytes)" if total is not None else ""))
    entries = header["entries"]
    coded = [(0, 0)] * len(entries)  # (images, values) of each entry's model items
    for index, entry in entries.with_model_items(blobs=False):
        coded[index] = coding.model_images(KINDS[entry["kind"]], entry, entry["items"])
    if record:
        model, stream = record.model, header["model_stream"]
        images, values = sum(n for n, _ in coded), sum(v for _, v in coded)
        units = f" ({_count(record.images, 'tile')})" if images != record.images else ""
        click.echo(f"model:   {model['name']}  ({model['architecture']}, numerics {NUMERICS_VERSION})  sha256 {model['sha256']}")
        click.echo("coding:  " + ", ".join(f"{k}={v}" for k, v in sorted(record.settings.to_dict().items())))
        click.echo(f"stream:  {_count(images, 'image')}{units}, {stream['length']} bytes, {8 * stream['length'] / max(1, values):.4f} bpd")
    click.echo(f"{'kept as':<13} {'format':<6} {'size':>11} {'images':>7} {'stored':>10}  name")
    declared = 0  # bytes the stored files and .npz members restore to, as the table says
    lines = []  # echoed a few thousand at a time: one write a line costs more than the rest of the line's work
    blob_bytes = entries.blob_bytes()
    for index, (name, (images, _), stored) in enumerate(zip(parsed.names, coded, blob_bytes)):
        entry = entries.entry(index, blobs=False)
        store = entry["store"]
        size = f"{entry.get('width', '')}x{entry.get('height', '')}" if "width" in entry else "x".join(map(str, entry.get("shape", [])))
        # an array some of whose images are kept classic (their bytes are in `stored`)
        label = "model+classic" if "fallback" in entry else f"{store}/{entry.get('codec', '')}".rstrip("/")
        label = "model+alpha" if has_alpha_blob(entry) else label  # its alpha plane's bytes are in `stored`
        # `stored`: bytes of this entry outside the model stream (its images are in the stream's total).
        lines.append(f"{label:<13} {entry['format']:<6} {size:>11} {images:>7} {stored:>10}  {_printable(name)}")
        declared += entry.get("size", 0) + sum(m.get("size", 0) for m in entry.get("members", []))
        if len(lines) == 4096:
            click.echo("\n".join(lines))
            lines = []
    if lines:
        click.echo("\n".join(lines))
    click.echo(f"total:   {_count(len(header['entries']), 'entry', 'entries')}, "
               f"{_count(sum(images for images, _ in coded), 'model image')}, stored bytes restore to {declared} bytes (declared)")


def _printable(name: str) -> str:
    """A name as one line of plain text: the schema refuses control characters, and anything a
    terminal could still act on is shown escaped."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")
