"""`bbzip compress`, `decompress`, `test` and `list`."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

from models.architectures import NUMERICS_VERSION
from models.coder_choice import default_settings, load_coder
from models.coding_settings import CodingSettings, SettingsError
from models.files import atomic_write

from . import coding
from .archive import ArchiveError, read_archive, write_archive
from .console import output_options
from .entries import collect_inputs, read_entry
from .errors import BBZipError, guard, refuse_overwrite


def _read_source(source: str) -> bytes:
    if source == "-":
        if sys.stdin.isatty():
            raise click.UsageError("refusing to read an archive from a terminal")
        return sys.stdin.buffer.read()
    path = Path(source)
    if not path.is_file():
        raise BBZipError(f"{source}: no such file")
    return path.read_bytes()


def _load(source: str):
    try:
        return read_archive(_read_source(source), source)
    except ArchiveError as error:
        raise BBZipError(str(error)) from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _write_archive_file(path: Path, data: bytes, force: bool) -> None:
    """Without `force` the archive is created exclusively, so a file that appeared while
    compressing, or another compress to the same name, is never overwritten."""
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), exclusive=not force)
    except FileExistsError:
        raise BBZipError(f"{path}: appeared while compressing; not overwritten (use -f)") from None


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
@click.option("-o", "--output", required=True, help="Archive to write, or - for stdout.")
@click.option("--model", "model_spec", help="A shipped model's name or a .safetensors file (default: the shipped model that fits).")
@click.option("--k-steps", default=0, show_default=True, help="Optimise each posterior for K Adam steps (paper Algorithm 2).")
@click.option("--lr", default=5e-3, show_default=True, help="Learning rate of the K steps.")
@click.option("--batch-size", type=int, help="Images coded side by side [default: 1 per 20 binary / 2 grey images, 16 to 1000].")
@click.option("--seed", default=0, show_default=True, help="Seed of the initial bits and the K-step noise.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT.")
@click.pass_obj
@output_options
@guard
def compress_command(out, inputs, output, model_spec, k_steps, lr, batch_size, seed, force):
    """Compress image files, folders and .npy/.npz arrays of uint8 images into one archive."""
    if output == "-" and sys.stdout.isatty():
        raise click.UsageError("refusing to write an archive to a terminal (use -o FILE)")
    _check_coding_options(k_steps, lr, seed, batch_size)
    refuse_overwrite(Path(output), force)
    coder = load_coder(model_spec) if model_spec else None
    found = collect_inputs(inputs)
    fits = coding.fits(coder.model) if coder else coding.fits_any_shipped
    entries = [read_entry(name, path, fits) for name, path in found]
    if coder is None:
        coder = coding.choose_default(entries)
    n_items = sum(len(e.items) for e in entries)
    settings = default_settings(coder, n_items, k_steps=k_steps, lr=lr, seed=seed, batch_size=batch_size) if coder else None
    started = time.perf_counter()
    with out.bar("compressing", n_items) as advance:
        header, payload = coding.build(entries, coder, settings, on_batch=advance)
    data = write_archive(header, payload)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        _write_archive_file(Path(output), data, force)
    seconds = time.perf_counter() - started
    if coder and n_items:
        config = coder.model.config
        stream_bpd = 8 * header["model_stream"]["length"] / (n_items * config.pixels)
        out.info(f"{_count(len(entries), 'file')}, {_count(n_items, 'image')} by {coder.name} (K={k_steps}): "
                 f"{len(data)} bytes, model stream {stream_bpd:.4f} bpd, {n_items / seconds:.0f} images/s")
    else:
        out.info(f"{_count(len(entries), 'file')}, {len(data)} bytes (no images for a model)")


def _decode(out, source: str, model_spec: str | None):
    archive = _load(source)
    with out.bar("decompressing", _model_items(archive)) as advance:
        files = coding.extract(archive, model_spec, on_batch=advance)
    return archive, files


@click.command("decompress")
@click.argument("archive")
@click.option("-o", "--output", "output_dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the files into.")
@click.option("--model", "model_spec", help="The model file, if the archive's model is not a shipped one.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing files.")
@click.pass_obj
@output_options
@guard
def decompress_command(out, archive, output_dir, model_spec, force):
    """Write every file of ARCHIVE (or - for stdin) back, pixel-identical, under OUTPUT."""
    archive_data, files = _decode(out, archive, model_spec)
    targets = [(output_dir / f.name, f) for f in files]  # names checked by the header schema
    clashes = [str(t) for t, _ in targets if t.exists() or t.is_symlink()]
    if clashes and not force:
        raise BBZipError(f"{clashes[0]}: already exists (use -f to overwrite)")
    output_dir.mkdir(parents=True, exist_ok=True)
    root = output_dir.resolve()
    staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=".bbzip-"))
    placed = []  # targets that did not exist before: removed again if a later one fails
    try:
        for index, (target, restored) in enumerate(targets):
            staged = staging / str(index)
            if restored.link_target is not None:
                os.symlink(restored.link_target, staged)
                continue
            staged.write_bytes(restored.data)
            if restored.attributes:
                os.chmod(staged, restored.attributes[0])
                os.utime(staged, ns=(restored.attributes[1], restored.attributes[1]))
        # Files first, links last, so that no file is written through a link of this archive;
        # and every folder a file goes into must really lie inside the output folder (a link
        # already there must not lead a file out of it).
        for index, (target, restored) in sorted(enumerate(targets), key=lambda it: it[1][1].link_target is not None):
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.parent.resolve().is_relative_to(root):
                raise BBZipError(f"{target}: its folder leads outside {output_dir} (through a symbolic link); "
                                 "nothing was written")
            existed = target.exists() or target.is_symlink()
            os.replace(staging / str(index), target)
            if not existed:
                placed.append(target)
        placed = []
    finally:
        for target in placed:
            target.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    out.info(f"{_count(len(targets), 'file')} written to {output_dir}")


@click.command("test")
@click.argument("archive")
@click.option("--model", "model_spec", help="The model file, if the archive's model is not a shipped one.")
@click.pass_obj
@output_options
@guard
def test_command(out, archive, model_spec):
    """Decode everything in ARCHIVE and check every checksum; write nothing."""
    _, files = _decode(out, archive, model_spec)
    out.info(f"{archive}: OK ({_count(len(files), 'file')})")


@click.command("list")
@click.argument("archive")
@click.pass_obj
@output_options
@guard
def list_command(out, archive):
    """Show the entries, model, coding settings and sizes of ARCHIVE without decoding it."""
    parsed = _load(archive)
    header = parsed.header
    record = coding.model_description(parsed)
    total = len(_read_source(archive)) if archive != "-" else None
    click.echo(f"archive: {archive}" + (f"  ({total} bytes)" if total is not None else ""))
    if record:
        model, stream = record.model, header["model_stream"]
        pixels = max(1, record.images * model["config"]["height"] * model["config"]["width"])
        click.echo(f"model:   {model['name']}  ({model['architecture']}, numerics {NUMERICS_VERSION})  sha256 {model['sha256']}")
        click.echo("coding:  " + ", ".join(f"{k}={v}" for k, v in sorted(record.settings.to_dict().items())))
        click.echo(f"stream:  {record.images} images, {stream['length']} bytes, {8 * stream['length'] / pixels:.4f} bpd")
    click.echo(f"{'kind':<13} {'format':<6} {'size':>11} {'images':>7}  name")
    for entry in header["entries"]:
        store = entry.get("store", entry["kind"])
        size = f"{entry.get('width', '')}x{entry.get('height', '')}" if "width" in entry else "x".join(map(str, entry.get("shape", [])))
        label = f"{store}/{entry.get('codec', '')}".rstrip("/")
        click.echo(f"{label:<13} {entry['format']:<6} {size:>11} {entry['items']:>7}  {entry['name']}")
