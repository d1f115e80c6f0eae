"""Messages and progress bars on stderr (never stdout), honouring -q / --no-progress."""
from __future__ import annotations

import contextlib
import functools
import sys

import click

from rich.console import Console
from rich import filesize
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

stderr = Console(stderr=True, highlight=False)


class Output:
    def __init__(self, quiet: bool = False, verbose: bool = False, progress: bool = True):
        self.quiet = quiet
        self.verbose = verbose
        self.progress = progress and not quiet and sys.stderr.isatty()

    def info(self, text: str) -> None:
        if not self.quiet:
            # Names like "x[/y]" print as they are; lines are not cut at 80 columns in a pipe.
            stderr.print(text, markup=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        """A warning: shown even with -q, as `bbzip: warning: ...`."""
        stderr.print(f"bbzip: warning: {text}", markup=False, soft_wrap=True)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None, unit: str = "images"):
        """Yields advance(n, **fields); a rich bar on stderr when it is a terminal: done of total,
        the rate, time taken and time left (a total of None: done so far, the bar pulsing).
        `unit`: what is counted ("bytes" are shown in kB, MB)."""
        if not self.progress:
            yield lambda n=1, **fields: None
            return
        done = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        columns = [TextColumn("{task.description}"), BarColumn(), done, _Rate(unit),
                   TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=stderr, transient=False) as progress:
            task = progress.add_task(description, total=total, status="")

            def advance(n=1, **fields):
                progress.update(task, advance=n, status=fields.get("status", ""))

            yield advance
            if total is None:  # counted: the bar is left full, not pulsing
                progress.update(task, total=next(shown for shown in progress.tasks if shown.id == task).completed)


class _Rate(ProgressColumn):
    """Units a second, over rich's recent window."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        if self.unit == "bytes":
            return Text(f"{filesize.decimal(int(speed))}/s")
        return Text(f"{speed:,.0f} {self.unit}/s")


def output_options(command):
    """-q, -v and --no-progress after the subcommand too (`bbzip compress imgs -o a.bb -q`), as
    zstd and xz take them anywhere."""

    @functools.wraps(command)
    def wrapper(out, *args, later_quiet=False, later_verbose=False, later_no_progress=False, **kwargs):
        if later_quiet or later_verbose or later_no_progress:
            out = Output(quiet=out.quiet or later_quiet, verbose=out.verbose or later_verbose,
                         progress=out.progress and not later_no_progress)
        return command(out, *args, **kwargs)

    wrapper = click.option("--no-progress", "later_no_progress", is_flag=True, help="No progress bars.")(wrapper)
    wrapper = click.option("-v", "--verbose", "later_verbose", is_flag=True, help="More detail; tracebacks on errors.")(wrapper)
    return click.option("-q", "--quiet", "later_quiet", is_flag=True, help="Only errors on stderr.")(wrapper)
