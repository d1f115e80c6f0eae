"""Messages and progress bars on stderr (never stdout), honouring -q / --no-progress."""
from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

stderr = Console(stderr=True, highlight=False)


class Output:
    def __init__(self, quiet: bool = False, verbose: bool = False, progress: bool = True):
        self.quiet = quiet
        self.verbose = verbose
        self.progress = progress and not quiet and sys.stderr.isatty()

    def info(self, text: str) -> None:
        if not self.quiet:
            stderr.print(text)

    def detail(self, text: str) -> None:
        if self.verbose:
            stderr.print(text)

    @contextlib.contextmanager
    def bar(self, description: str, total: int):
        """Yields advance(n, **fields); a rich bar on stderr when it is a terminal."""
        if not self.progress:
            yield lambda n=1, **fields: None
            return
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=stderr, transient=False) as progress:
            task = progress.add_task(description, total=total, status="")

            def advance(n=1, **fields):
                progress.update(task, advance=n, status=fields.get("status", ""))

            yield advance
