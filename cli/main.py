"""The bbzip command group."""
from __future__ import annotations

import importlib
import signal

import click

from bbzip.models import malloc

from .console import Output

# Commands are imported when used: training and evaluation need torch, while compress,
# decompress, test and list run on numpy alone and start in a fraction of the time.
COMMANDS = {
    "compress": "bbzip.cli.archive_commands:compress_command",
    "decompress": "bbzip.cli.archive_commands:decompress_command",
    "test": "bbzip.cli.archive_commands:test_command",
    "list": "bbzip.cli.archive_commands:list_command",
    "train": "bbzip.cli.train_commands:train_command",
    "train-encoder": "bbzip.cli.train_commands:train_encoder_command",
    "evaluate": "bbzip.cli.evaluate_command:evaluate_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="More detail; tracebacks on errors.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.version_option(package_name="bbzip")
@click.pass_context
def cli(ctx, quiet, verbose, no_progress):
    """bbzip: lossless image compression with bits-back ANS on a learned VAE."""
    ctx.obj = Output(quiet=quiet, verbose=verbose, progress=not no_progress)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    # SIGTERM (kill, a closing terminal, a service manager) ends bbzip like Ctrl-C: through the
    # same clean-up paths, so no partial archive or staging folder is left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    malloc.usual_thresholds()  # (its worker processes do the same: models/scheduler.py)
    cli(prog_name="bbzip")
