"""The bbzip command group."""
from __future__ import annotations

import click

from .console import Output
from .archive_commands import compress_command, decompress_command, list_command, test_command
from .evaluate_command import evaluate_command
from .train_commands import train_command, train_encoder_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="More detail; tracebacks on errors.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.version_option(package_name="bbzip")
@click.pass_context
def cli(ctx, quiet, verbose, no_progress):
    """bbzip: lossless image compression with bits-back ANS on a learned VAE."""
    ctx.obj = Output(quiet=quiet, verbose=verbose, progress=not no_progress)


for command in (compress_command, decompress_command, test_command, list_command):
    cli.add_command(command)
cli.add_command(train_command)
cli.add_command(train_encoder_command)
cli.add_command(evaluate_command)


def main():
    cli(prog_name="bbzip")
