"""Turning library errors into one-line messages and exit codes (0 ok, 1 error, 2 usage)."""
from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path

import click

from bbans import BBANSError
from models.data import DataError
from models.files import ModelFileError


class BBZipError(Exception):
    """An error the user should see as `bbzip: <message>`."""


EXPECTED = (BBZipError, BBANSError, DataError, ModelFileError, OSError)


def guard(command):
    """Run a command: expected errors become one line on stderr and exit 1 (traceback with -v)."""

    @functools.wraps(command)
    def wrapper(out, *args, **kwargs):
        try:
            return command(out, *args, **kwargs)
        except click.exceptions.ClickException:
            raise
        except EXPECTED as error:
            if out.verbose:
                traceback.print_exc()
            click.echo(f"bbzip: {_describe(error)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("bbzip: interrupted", err=True)
            sys.exit(130)

    return wrapper


def _describe(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


def refuse_overwrite(path: Path, force: bool) -> None:
    if str(path) != "-" and Path(path).exists() and not force:
        raise BBZipError(f"{path}: already exists (use -f to overwrite)")
