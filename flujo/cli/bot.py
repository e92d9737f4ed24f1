"""`flujo bot`: run the GitHub App, check a local repository, inspect the queue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from flujo.cli import InvalidInput, UsageError, exit_with
from flujo.spec.errors import EXIT_INVALID, EXIT_OK


@click.group()
def bot() -> None:
    """The GitHub App: register it (`setup`), `serve` it, or run its checks on a local
    repository.

    Settings come from FLUJO_BOT_* environment variables or a .env file (see
    docs/github-app.md).
    """


def _settings(command: str = "flujo bot", *, serving: bool = False) -> Any:
    """The settings, or every problem with them at once (exit code 2)."""
    from flujo.bot.settings import SettingsError, load_settings

    try:
        return load_settings(serving=serving)
    except SettingsError as exc:
        hint = (
            "\nRegister an App and store its settings with `flujo bot setup`; every setting is "
            "in docs/github-app.md#settings."
            if serving
            else ""
        )
        raise UsageError(f"{command}: cannot start, {exc}{hint}") from None


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
    """Serve webhooks: POST /webhooks, GET /healthz, GET /readyz, GET /metrics.

    Refuses to start without FLUJO_BOT_WEBHOOK_SECRET, a numeric FLUJO_BOT_APP_ID and a
    private key, listing every missing or malformed setting at once (exit code 2).
    """
    import logging

    from aiohttp import web

    from flujo.bot.app import create_app
    from flujo.bot.logs import configure_logging, log_event

    settings = _settings("flujo bot serve", serving=True)
    app = create_app(settings)
    configure_logging(log_level.upper(), settings.secrets(), settings.log_format)
    listen_host: str = host or settings.host
    listen_port: int = port or settings.port
    web.run_app(
        app,
        host=listen_host,
        port=listen_port,
        print=lambda _msg: log_event(
            logging.getLogger("flujo.bot"),
            logging.INFO,
            "listening",
            host=listen_host,
            port=listen_port,
        ),
    )


@bot.command()
@click.option(
    "--org",
    "organization",
    metavar="LOGIN",
    help="Register the App for this organization (default: your own account).",
)
@click.option(
    "--name", help="The App's name (default: the manifest's; names are unique on GitHub)."
)
@click.option("--host", help="Interface to listen on (FLUJO_BOT_HOST, default 0.0.0.0).")
@click.option("--port", type=int, help="Port to listen on (FLUJO_BOT_PORT, default 8080).")
def setup(organization: str | None, name: str | None, host: str | None, port: int | None) -> None:
    """Register the GitHub App from its manifest (app.yml) and store its settings.

    Serves GET /setup and GET /setup/done where FLUJO_BOT_PUBLIC_URL points, and prints
    a link that works once: open it, confirm on GitHub, and the App's id, private key and
    webhook secret are written (mode 0600) to .env and a key file beside FLUJO_BOT_DB,
    where `flujo bot serve` reads them. Exits when done. Exit codes: 0 registered, 1
    GitHub did not give the App's credentials, 2 no FLUJO_BOT_PUBLIC_URL or bad settings.
    """
    import asyncio
    import os

    from aiohttp import web

    from flujo.bot.github import install_url
    from flujo.bot.logs import configure_logging
    from flujo.bot.registration import (
        STORED,
        Registered,
        Registration,
        create_registration_app,
    )
    from flujo.bot.settings import ENV_FILE

    settings = _settings("flujo bot setup")
    if not settings.public_url:
        raise UsageError(
            "flujo bot setup: FLUJO_BOT_PUBLIC_URL: missing: where GitHub and your browser "
            "reach the bot, e.g. https://flujo.example.com (behind a proxy that terminates "
            "TLS: docs/github-app.md#tls-behind-a-reverse-proxy)"
        )
    configure_logging("INFO", (), settings.log_format)
    registration = Registration(
        public_url=settings.public_url,
        github_url=settings.github_url,
        env_file=Path(ENV_FILE),
        key_file=settings.db.parent / "app-private-key.pem",
        name=name,
        organization=organization,
    )

    async def serve() -> Registered | None:
        finished: asyncio.Future[Registered | None] = asyncio.get_running_loop().create_future()

        def done(app: Registered | None) -> None:
            if not finished.done():
                finished.set_result(app)

        registration.on_done = done
        runner = web.AppRunner(create_registration_app(registration), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host or settings.host, port or settings.port).start()
            click.echo(
                "flujo bot setup: open this link in your browser to register the App "
                f"(it works once):\n  {registration.link}",
                err=True,
            )
            app = await finished
            await asyncio.sleep(0.5)  # the last page on its way to the browser
            return app
        finally:
            await runner.cleanup()

    app = asyncio.run(serve())
    if app is None:
        raise InvalidInput(
            "flujo bot setup: GitHub did not give the App's credentials (the code works "
            "once, within an hour); nothing was stored: run flujo bot setup again"
        )
    click.echo(
        f"flujo bot setup: App {app.app_id} ({app.slug}) registered; its settings are in "
        f"{Path(ENV_FILE).resolve()} and {registration.key_file.resolve()} (mode 0600).\n"
        f"Install it: {install_url(app.html_url)}, then run `flujo bot serve`.",
        err=True,
    )
    for variable in STORED:
        if variable in os.environ:
            click.echo(
                f"flujo bot setup: note: {variable} is set in the environment and wins over "
                f"{ENV_FILE}: unset it",
                err=True,
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
    from flujo.bot.logs import configure_logging

    if not _settings("flujo bot worker").database_url:
        raise UsageError(
            "flujo bot worker: set FLUJO_BOT_DATABASE_URL (postgresql://…): workers apart "
            "from `flujo bot serve` need the PostgreSQL queue"
        )
    settings = _settings("flujo bot worker", serving=True)
    configure_logging(log_level.upper(), settings.secrets(), settings.log_format)

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

    settings = _settings("flujo bot local")

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
            git_ref=rev,
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
@click.option(
    "--scheduled",
    is_flag=True,
    help="Only the pending auto-apply steps (merges waiting for checks or a window, "
    "bake-in looks of staged changes, watches after a merge), soonest first, with each "
    "one's last decision.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--retry",
    "retry_id",
    type=int,
    metavar="ID",
    help="Queue dead letter ID again (a running bot takes it within seconds).",
)
def jobs(
    states: tuple[str, ...], limit: int, scheduled: bool, as_json: bool, retry_id: int | None
) -> None:
    """List webhook deliveries in the queue, newest first (dead letters with --state dead),
    the pending auto-apply steps with --scheduled, or queue a dead letter again with
    --retry ID.

    Exit codes: 0 done, 1 no such job or not a dead letter (--retry), 2 no queue or bad
    settings.
    """
    import datetime

    settings = _settings("flujo bot jobs")
    if not settings.database_url and not settings.db.exists():
        raise UsageError(f"flujo bot jobs: no queue at {settings.db} (FLUJO_BOT_DB)")
    if retry_id is not None:
        _retry(settings, retry_id, as_json)
        return
    if scheduled:
        _scheduled(settings, limit, as_json)
        return
    found = _read_jobs(settings, states, limit)
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


def _retry(settings: Any, job_id: int, as_json: bool) -> None:
    """`--retry`: the dead letter back in the queue, through the queue's own interface."""
    import asyncio

    from flujo.bot.queue import Job, NotRetryable, QueueUnavailable

    async def requeue() -> Job:
        if settings.database_url:
            from flujo.bot.postgres_queue import PostgresQueue

            queue: Any = PostgresQueue(settings.database_url)
        else:
            from flujo.bot.sqlite_queue import SQLiteQueue

            queue = SQLiteQueue(settings.db, synchronous=settings.db_sync)
        try:
            found: Job = await queue.requeue(job_id)
            return found
        finally:
            await queue.close()

    try:
        job = asyncio.run(requeue())
    except NotRetryable as exc:
        raise InvalidInput(f"flujo bot jobs --retry: {exc}") from None
    except QueueUnavailable as exc:
        raise UsageError(f"flujo bot jobs --retry: {exc}") from None
    if as_json:
        click.echo(json.dumps({"retried": job_id, "job": _job_dict(job)}, indent=2))
    else:
        click.echo(
            f"dead letter {job_id} queued again as job {job.id} "
            f"({job.event}, delivery {job.delivery_id})"
        )


def _read_jobs(settings: Any, states: tuple[str, ...], limit: int) -> list[Any]:
    """Jobs, newest first, from the queue the settings name (PostgreSQL or the file)."""
    if settings.database_url:
        from flujo.bot.postgres_queue import read_jobs as read_pg_jobs

        return read_pg_jobs(settings.database_url, states, limit)
    from flujo.bot.sqlite_queue import read_jobs

    return read_jobs(settings.db, states, limit)


def _scheduled(settings: Any, limit: int, as_json: bool) -> None:
    import asyncio
    import datetime

    from flujo.bot.applications import Applications
    from flujo.bot.auto_apply import scheduled_steps

    apps = Applications(settings.records())
    try:
        jobs = _read_jobs(settings, ("queued", "running"), 10_000)
        steps = asyncio.run(scheduled_steps(jobs, apps))
        steps = steps[:limit]
    finally:
        apps.close()
    if as_json:
        click.echo(json.dumps([step.to_dict() for step in steps], indent=2))
        return
    if not steps:
        click.echo("no pending auto-apply steps")
        return
    for step in steps:
        due = datetime.datetime.fromtimestamp(step.due, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        click.echo(
            f"{due}  {step.kind:<6}  {step.repo}#{step.number}  tier {step.tier}  "
            f"{step.state}: {step.last}"
        )


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
    settings = _settings("flujo bot token")
    state = BotState(settings.records())
    try:
        click.echo(state.issue_token(installation, repository))
    finally:
        state.close()
