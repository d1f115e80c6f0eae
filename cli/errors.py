"""Turning library errors into one-line messages and exit codes (0 ok, 1 error, 2 usage)."""
from __future__ import annotations

import functools
import os
import stat
import sys
import traceback
from pathlib import Path

import click

from bbzip.bbans import BBANSError
from bbzip.models.data import DataError
from bbzip.models.files import ModelFileError
from bbzip.models.scheduler import WorkerLost


class BBZipError(Exception):
    """An error the user should see as `bbzip: <message>`."""


EXPECTED = (BBZipError, BBANSError, DataError, ModelFileError, OSError, WorkerLost)


def guard(command=None, *, reader_may_stop: bool = False):
    """Run a command: expected errors become one line on stderr and exit 1 (traceback with -v).

    A closed stdout (`bbzip list a.bb | head -1`): where the output is a listing the reader may
    stop early (`reader_may_stop`), so bbzip stops quietly with 141, as `ls | head` does; where
    it is an archive (`-o -`), the archive did not get through, which is an error."""
    if command is None:
        return functools.partial(guard, reader_may_stop=reader_may_stop)

    @functools.wraps(command)
    def wrapper(out, *args, **kwargs):
        try:
            return command(out, *args, **kwargs)
        except click.exceptions.ClickException:
            raise
        except BrokenPipeError:
            _detach_stdout()
            if reader_may_stop:
                sys.exit(141)
            click.echo("bbzip: the output closed before everything was written", err=True)
            sys.exit(1)
        except EXPECTED as error:
            if out.verbose:
                traceback.print_exc()
            click.echo(f"bbzip: {_describe(error)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("bbzip: interrupted", err=True)
            sys.exit(130)

    return wrapper


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so that Python's own flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _describe(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


def refuse_overwrite(path: Path, force: bool) -> None:
    """bbzip writes regular files only: an existing file (or a symbolic link, itself, not what it
    points to) is replaced only with -f, and nothing else (a device, FIFO, socket or folder) is
    replaced even with it."""
    if str(path) == "-":
        return
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise BBZipError(f"{path}: {error.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise BBZipError(f"{path}: exists and is not a regular file; bbzip writes only regular files, "
                         "not replacing it (-o - writes to standard output)")
    if not force:
        raise BBZipError(f"{path}: already exists (use -f to overwrite)")
