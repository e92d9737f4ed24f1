"""A progress bar on stderr for commands that do many things in one process (`flujo run
--inputs`, `flujo test` over many specs): shown only on a terminal, so that output piped
to a file or read by a program is the same as without it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

import click


@contextlib.contextmanager
def progress(
    length: int, label: str, *, quiet: bool = False, stream: TextIO | None = None
) -> Iterator[Callable[[], None] | None]:
    """Yield a function to call once per item done, drawing a bar of `length` items on
    `stream` (stderr by default); yield None, and draw nothing, when the stream is not a
    terminal, when `quiet` (JSON output) or when there is nothing to do."""
    out = stream if stream is not None else sys.stderr
    if quiet or length <= 0 or not out.isatty():
        yield None
        return
    with click.progressbar(length=length, label=label, file=out) as bar:
        yield lambda: bar.update(1)
