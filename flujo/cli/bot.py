"""`flujo bot`: run the GitHub App, check a local repository, inspect the queue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from flujo.cli import UsageError, exit_with
from flujo.spec.errors import EXIT_INVALID, EXIT_OK


@click.group()
def bot() -> None:
    """The GitHub App: `serve` it, or run its checks on a local repository.

    Settings come from FLUJO_BOT_* environment variables (see README, "The GitHub App").
    """


def _settings() -> Any:
    from pydantic import ValidationError

    from flujo.bot.settings import BotSettings

    try:
        return BotSettings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            lines.append(f"flujo bot: FLUJO_BOT_{where.upper()}: {error['msg']}")
        raise UsageError("\n".join(lines)) from None


@bot.command()
@click.option("--host", help="Interface to listen on (FLUJO_BOT_HOST, default 0.0.0.0).")
@click.option("--port", type=int, help="Port to listen on (FLUJO_BOT_PORT, default 8080).")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def serve(host: str | None, port: int | None, log_level: str) -> None:
    """Serve webhooks: POST /webhooks, GET /healthz, GET /readyz.

    Refuses to start without FLUJO_BOT_WEBHOOK_SECRET, FLUJO_BOT_APP_ID and a private key.
    """
    from aiohttp import web

    from flujo.bot.app import create_app
    from flujo.bot.logs import configure_logging
    from flujo.bot.settings import SettingsError

    settings = _settings()
    from flujo.bot.github import load_private_key

    try:
        settings.app()
        load_private_key(settings.key())
        app = create_app(settings)
    except SettingsError as exc:
        raise UsageError(f"flujo bot serve: {exc}") from None
    configure_logging(log_level.upper(), settings.secrets())
    web.run_app(
        app,
        host=host or settings.host,
        port=port or settings.port,
        print=lambda _msg: click.echo(
            f"flujo bot: listening on {host or settings.host}:{port or settings.port}", err=True
        ),
    )


@bot.command()
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def worker(log_level: str) -> None:
    """Handle queued deliveries without serving webhooks (FLUJO_BOT_DATABASE_URL): run
    as many as you like beside `flujo bot serve`, on one PostgreSQL database."""
    import asyncio
    import contextlib

    from flujo.bot.app import Bot
    from flujo.bot.github import load_private_key
    from flujo.bot.logs import configure_logging
    from flujo.bot.settings import SettingsError

    settings = _settings()
    if not settings.database_url:
        raise UsageError(
            "flujo bot worker: set FLUJO_BOT_DATABASE_URL (postgresql://…): workers apart "
            "from `flujo bot serve` need the PostgreSQL queue"
        )
    try:
        settings.app()
        load_private_key(settings.key())
    except SettingsError as exc:
        raise UsageError(f"flujo bot worker: {exc}") from None
    configure_logging(log_level.upper(), settings.secrets())

    async def main() -> None:
        bot = Bot(settings)
        await bot.start()
        click.echo("flujo bot: worker started", err=True)
        try:
            await asyncio.Event().wait()
        finally:
            await bot.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@bot.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--rev", default="HEAD", show_default=True, help="The commit to check.")
@click.option(
    "--override",
    "overrides",
    multiple=True,
    metavar="POLICY_ID",
    help="Approve this REQUIRE_APPROVAL policy, as the PR label would. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def local(path: Path, rev: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Run the bot's checks on a local git repository's commit, with no GitHub.

    Prints each check and writes it under .git/flujo/checks/<sha>/. Exit codes: 0 no
    check failed, 1 a check failed (it would block a merge), 2 not a repository or
    no such commit.
    """
    import asyncio
    import os
    from datetime import UTC, datetime

    from flujo.bot.commit_check import check_commit
    from flujo.bot.commit_report import Override
    from flujo.bot.evaluate import InProcess
    from flujo.bot.forge import CheckOutput, CheckRef
    from flujo.bot.local import GitError, LocalForge
    from flujo.spec.registry import StepRegistry

    settings = _settings()

    def show(ref: CheckRef, status: str, output: CheckOutput | None) -> None:
        if output is None or as_json:
            return
        mark = {"success": "✓", "failure": "✗"}.get(output.conclusion, "•")
        click.echo(f"{mark} {output.name}: {output.conclusion} — {output.title}")
        for a in output.annotations:
            click.echo(f"    {a.path}:{a.start_line}: {a.level}: {a.message.splitlines()[0]}")

    async def main() -> tuple[str, list[CheckOutput], Path]:
        forge = LocalForge(path, on_check=show)
        sha = await forge.resolve(rev)
        by = os.environ.get("USER") or "you"
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        outputs = await check_commit(
            forge,
            path.name,
            sha,
            evaluator=InProcess(StepRegistry(allow=settings.skills_allow)),
            overrides={o: Override(o, f"{by} (--override)", at) for o in overrides},
        )
        return sha, outputs, await forge.checks_dir(sha)

    try:
        sha, outputs, folder = asyncio.run(main())
    except GitError as exc:
        raise UsageError(f"flujo bot local: {path}: {exc}") from None
    if as_json:
        click.echo(json.dumps({"sha": sha, "checks": [_as_dict(o) for o in outputs]}, indent=2))
    else:
        click.echo(f"Checks of {sha[:12]} written to {folder}")
    failed = any(o.blocks_merge for o in outputs)
    exit_with(EXIT_INVALID if failed else EXIT_OK)


def _as_dict(output: Any) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(output)
    data["annotations"] = [a.to_github() for a in output.annotations]
    return data


@bot.command()
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["queued", "running", "done", "dead"]),
    help="Only jobs in this state (repeatable). Default: all.",
)
@click.option("--limit", default=50, show_default=True, help="Most jobs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs(states: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List webhook deliveries in the queue, newest first (dead letters with --state dead)."""
    import datetime

    from flujo.bot.sqlite_queue import read_jobs

    settings = _settings()
    if settings.database_url:
        from flujo.bot.postgres_queue import read_jobs as read_pg_jobs

        found = read_pg_jobs(settings.database_url, states, limit)
    elif not settings.db.exists():
        raise UsageError(f"flujo bot jobs: no queue at {settings.db} (FLUJO_BOT_DB)")
    else:
        found = read_jobs(settings.db, states, limit)
    if as_json:
        click.echo(json.dumps([_job_dict(j) for j in found], indent=2))
        return
    if not found:
        click.echo("no jobs")
        return
    for job in found:
        when = datetime.datetime.fromtimestamp(job.received_at).strftime("%Y-%m-%d %H:%M:%S")
        error = f"  {job.last_error}" if job.last_error else ""
        click.echo(
            f"{job.id:>6}  {when}  {job.state:<7}  {job.event:<26}  "
            f"{job.key or '-'}  attempts={job.attempts}{error}"
        )
    sys.stdout.flush()


def _job_dict(job: Any) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(job)
    data.pop("body", None)
    return data


@bot.command()
@click.argument("repository")
@click.option("--installation", type=int, required=True, help="The App installation's id.")
def token(repository: str, installation: int) -> None:
    """Create a bearer token for sending REPOSITORY's telemetry to the bot (OTLP/HTTP).

    Point the OpenTelemetry exporter of the pipelines' runtime at the bot:
    OTEL_EXPORTER_OTLP_ENDPOINT=https://BOT and
    OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20TOKEN. Only a hash is stored:
    the token is shown once.
    """
    from flujo.bot.state import BotState

    if repository.count("/") != 1 or not all(repository.split("/")):
        raise UsageError(f"flujo bot token: {repository!r} is not OWNER/NAME")
    settings = _settings()
    state = BotState(settings.db)
    try:
        click.echo(state.issue_token(installation, repository))
    finally:
        state.close()
