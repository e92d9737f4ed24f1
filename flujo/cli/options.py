"""Options shared by the commands that run pipelines or read runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def model_options(fn: F) -> F:
    """Where model calls go: a server, cassettes, or the built-in fake."""
    for option in reversed(
        [
            click.option(
                "--base-url",
                envvar="OPENAI_BASE_URL",
                help="OpenAI-compatible server (default: $OPENAI_BASE_URL).",
            ),
            click.option(
                "--record",
                type=click.Path(file_okay=False, path_type=Path),
                help="Store every model call in this folder (a cassette).",
            ),
            click.option(
                "--replay",
                type=click.Path(file_okay=False, path_type=Path),
                help="Answer model calls from this folder; a missing call fails clearly.",
            ),
            click.option(
                "--fake",
                is_flag=True,
                help="Answer model calls with the built-in deterministic fake server.",
            ),
            click.option(
                "--console-telemetry",
                is_flag=True,
                help="Also print spans and metrics to the console (OpenTelemetry).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


class StoreLocation(click.ParamType[Path | str]):
    """A run store: a SQLite file (a `Path`) or a PostgreSQL URL (kept as text: as a path,
    `postgresql://host/db` would lose a slash). `must_exist`: a file that is not there is
    a usage error (a database is created when missing)."""

    name = "store"

    def __init__(self, *, must_exist: bool = False) -> None:
        self.must_exist = must_exist

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Path | str:
        from flujo.engine.store_db import is_postgres

        if isinstance(value, Path) or not is_postgres(str(value)):
            kind = click.Path(exists=self.must_exist, dir_okay=False, path_type=Path)
            return kind.convert(value, param, ctx)
        return str(value)


def store_options(fn: F) -> F:
    """Where runs are kept."""
    fn = click.option(
        "--store",
        type=StoreLocation(),
        envvar="FLUJO_STORE",
        help="Run store (a SQLite file or a postgresql:// URL; default .flujo/flujo.db, or "
        "$FLUJO_STORE).",
    )(fn)
    return fn
