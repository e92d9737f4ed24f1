"""Colour and progress on a terminal, never in pipes: the one place that decides both.

Colour: `NO_COLOR` (any non-empty value) turns it off; else `FORCE_COLOR` (any value but
`0`) turns it on, in pipes too; else styles show only on a terminal (click strips them
from anything else). `cli()` applies the choice once, to its context, so every
`click.secho` and `click.style` of every command follows it.

Progress: `Progress(label)` draws one bar on stderr while long work runs, only when stderr
is a terminal and the command's output is not JSON, so stdout stays the command's result.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any


def colour_choice() -> bool | None:
    """True or False when the environment decides; None: a terminal decides."""
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force is not None and force != "":
        return force != "0"
    return None


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """A progress bar on stderr, fed `progress(done, total)` as work completes; a no-op
    when stderr is not a terminal or `enabled` is False. Use it as a context manager, so
    the bar ends (and its line is finished) however the work ends."""

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled and stderr_is_terminal()
        self._bar: Any = None
        self._done = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if self._bar is None:
            import click

            self._bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self._bar.__enter__()
        self._bar.update(done - self._done)
        self._done = done

    def advance(self, total: int) -> None:
        """One more item of `total` done."""
        self(self._done + 1, total)

    def advancing(self, total: int) -> Callable[[Any], None]:
        """A callback that advances by one of `total` whatever it is given (a result)."""
        return lambda _item: self.advance(total)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, error, trace)
            self._bar = None
