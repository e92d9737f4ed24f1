"""The bot's web application and the service behind it. No globals: everything is
built from `BotSettings` by `create_app`, so tests build as many bots as they like."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from gidgethub.sansio import Event

from flujo.bot.applications import Applications
from flujo.bot.apply_hooks import installed_hooks
from flujo.bot.clock import Clock, SystemClock
from flujo.bot.dashboard_state import Dashboards
from flujo.bot.forge import Forge
from flujo.bot.github import AppAuth
from flujo.bot.logs import RefusalLog, bounded
from flujo.bot.metrics import BotMetrics
from flujo.bot.queue import Delivery, Job
from flujo.bot.routers import router
from flujo.bot.routers.context import BotContext
from flujo.bot.settings import MAX_BODY_BYTES, BotSettings
from flujo.bot.snapshot import Limits, clear_stale
from flujo.bot.sqlite_queue import SQLiteQueue
from flujo.bot.state import BotState
from flujo.bot.suggestion_prs import suggest_delivery
from flujo.bot.telemetry import TelemetryStores
from flujo.bot.webhook import WebhookHandler
from flujo.bot.worker import Work, Workers

if TYPE_CHECKING:
    from flujo.bot.postgres_queue import PostgresQueue, QueueWorkers
from flujo.engine.otlp_ingest import IngestResult, make_otlp_routes
from flujo.engine.store import RunStore

log = logging.getLogger("flujo.bot")
BOT: web.AppKey[Bot] = web.AppKey("bot", object)  # type: ignore[arg-type]
REFUSALS: web.AppKey[RefusalLog] = web.AppKey("refusals", RefusalLog)


class Bot:
    """Queue, state, workers and the GitHub connection of one bot process."""

    def __init__(
        self,
        settings: BotSettings,
        *,
        forge_for: Callable[[int], Awaitable[Forge]] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        from flujo.bot.isolation import Isolated
        from flujo.bot.page_links import page_key
        from flujo.spec.registry import StepRegistry

        self.settings = settings
        self.metrics = BotMetrics()
        self.queue: SQLiteQueue | PostgresQueue
        if settings.database_url:
            from flujo.bot.postgres_queue import PostgresQueue

            self.queue = PostgresQueue(
                settings.database_url,
                max_attempts=settings.max_attempts,
                retry_base_s=settings.retry_base_s,
                lease_s=settings.lease_s,
                ack_connections=settings.ack_connections,
            )
        else:
            self.queue = SQLiteQueue(settings.db, synchronous=settings.db_sync)
        self.state = BotState(settings.records())
        self.telemetry = TelemetryStores(settings.db.parent / "telemetry", settings.database_url)
        self._background: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._forge_for = forge_for
        self._sleep = sleep
        self.registry_page: str | None = None
        """`/registry`, rendered on first request (the registry does not change)."""
        self.clock: Clock = clock or SystemClock()
        self.applications = Applications(settings.records())
        self.dashboards = Dashboards(settings.records())
        self.context = BotContext(
            forge_for=self._forge,
            state=self.state,
            registry=StepRegistry(allow=settings.skills_allow),
            evaluator=Isolated(tuple(settings.skills_allow), settings.isolation_limits()),
            telemetry=self.telemetry,
            limits=Limits(
                settings.max_snapshot_files,
                settings.max_snapshot_bytes,
                folder=settings.db.parent / "snapshots",
            ),
            suggest_max_open=settings.suggest_max_open,
            applications=self.applications,
            clock=self.clock,
            schedule=self.schedule,
            apply_hooks=installed_hooks(),
            public_url=settings.public_url,
            page_key=page_key(
                settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            ),
            evaluation=settings.evaluation(),
            dashboards=self.dashboards,
        )
        self.workers: Workers | QueueWorkers
        if isinstance(self.queue, SQLiteQueue):
            self.workers = Workers(
                self.queue,
                self.handle,
                concurrency=settings.workers,
                max_attempts=settings.max_attempts,
                retry_base_s=settings.retry_base_s,
                observe=self.metrics.job,
                clock=self.clock,
                on_poisoned=self.poisoned,
            )
        else:
            from flujo.bot.postgres_queue import QueueWorkers

            self.workers = QueueWorkers(self.queue, self.handle, concurrency=settings.workers)
        self.auth: AppAuth | None = None

    async def _forge(self, installation_id: int) -> Forge:
        if self._forge_for is not None:
            return await self._forge_for(installation_id)
        if self.auth is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            kwargs: dict[str, Any] = {} if self._sleep is None else {"sleep": self._sleep}
            self.auth = AppAuth(
                self._session,
                app_id=self.settings.app(),
                private_key=self.settings.key(),
                base_url=self.settings.github_url,
                max_wait_s=self.settings.max_rate_limit_wait_s,
                on_headers=self.metrics.github_headers,
                **kwargs,
            )
        return await self.auth.forge(installation_id)

    async def schedule(self, delivery: Delivery) -> None:
        """Store a scheduled job; the workers take it when its time comes."""
        if await self.queue.enqueue(delivery):
            self.workers.wake()

    async def store_for_token(self, token: str) -> RunStore | None:
        """The run store that telemetry sent with this bearer token goes to."""
        owner = await self.state.token_owner(token)
        return self.telemetry.store(owner.repo) if owner is not None else None

    async def telemetry_arrived(self, token: str, result: IngestResult) -> None:
        """Queue the repository's suggestion cycle (once per interval)."""
        owner = await self.state.token_owner(token)
        if owner is None or not result.accepted:
            return
        delivery = suggest_delivery(
            owner.repo,
            owner.installation,
            self.settings.suggest_interval_s,
            time.time(),
            self.settings.suggest_delay_s,
        )

        async def enqueue() -> None:
            if await self.queue.enqueue(delivery):
                self.workers.wake()

        task = asyncio.ensure_future(enqueue())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def poisoned(self, job: Job) -> None:
        """A job that stopped the bot every time was dead-lettered: complete the checks it
        had started as failed, saying why (they would stay in progress for ever)."""
        import json

        from flujo.bot.commit_check import fail_checks, poison_summary
        from flujo.bot.routers.check_requests import commit_of

        try:
            data = json.loads(job.body)
        except (ValueError, RecursionError):
            return
        found = commit_of(job.event, data) if isinstance(data, dict) else None
        if found is None:
            return
        event, sha = found
        forge = await self._forge(event.installation_id)
        title, summary = poison_summary(job.attempts)
        await fail_checks(forge, event.repo, sha, title, summary)
        log.info("%s@%s: checks completed as failed (%s)", event.repo, sha[:12], title)

    async def handle(self, work: Work) -> None:
        event = Event(work.data, event=work.event, delivery_id=work.job.delivery_id)
        await router.dispatch(event, self.context)

    async def drain(self) -> None:
        """Wait until everything received so far has been handled (tests, local runs)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.workers.drain()

    async def start(self) -> None:
        if not isinstance(self.queue, SQLiteQueue):
            await self.queue.open()
        folder = self.context.limits.folder
        if folder is not None and (removed := clear_stale(folder)):
            log.info("removed %d snapshot folder(s) left by an earlier run", removed)
        await self.workers.start()

    async def stop(self) -> None:
        await self.workers.stop()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.queue.close()
        self.state.close()
        self.applications.close()
        self.dashboards.close()
        self.telemetry.close()
        if self._session is not None:
            await self._session.close()


def create_app(settings: BotSettings, bot: Bot | None = None) -> web.Application:
    """The aiohttp application: `POST /webhooks`, `POST /v1/traces` and `/v1/metrics`
    (OTLP/HTTP telemetry, bearer token per repository), `GET /healthz`, `GET /readyz`,
    `GET /metrics` (Prometheus), the pages behind unguessable links (`/suggestions/…`,
    `/roi/…`) and `GET /registry`.

    Raises SettingsError when no webhook secret is configured.
    """
    secret = settings.secret()
    bot = bot or Bot(settings)
    app = web.Application(client_max_size=MAX_BODY_BYTES + 1, middlewares=[_errors])
    app[BOT] = bot
    refusals = app[REFUSALS] = RefusalLog(log)
    webhooks = WebhookHandler(
        secret,
        bot.queue,
        on_enqueued=bot.workers.wake,
        record=bot.metrics.delivery,
        refusals=refusals,
    )
    app.router.add_post("/webhooks", webhooks.handle)

    def telemetry_refused(request: web.Request, status: int, reason: str) -> None:
        refusals.refused(f"telemetry {request.path}", status, reason, request.remote)

    app.add_routes(make_otlp_routes(bot.store_for_token, bot.telemetry_arrived, telemetry_refused))
    app.router.add_get("/suggestions/{owner}/{repo}/{token}", _suggestion_page)
    app.router.add_get("/roi/{owner}/{repo}/{token}", _roi_page)
    app.router.add_get("/registry", _registry_page)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)

    async def lifecycle(app: web.Application) -> Any:
        await bot.start()
        yield
        await bot.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


async def _suggestion_page(request: web.Request) -> web.Response:
    """The read-only page of a proposed suggestion (bullets, diagrams, YAML diff)."""
    from flujo.bot.page import render_page
    from flujo.bot.page_links import page_token

    bot = request.app[BOT]
    repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
    token = request.match_info["token"]
    view = None
    for suggestion_id, candidate in await bot.state.views(repo):
        expected = page_token(bot.context.page_key, repo, suggestion_id)
        if hmac.compare_digest(expected, token):
            view = candidate
            break
    if view is None:
        raise web.HTTPNotFound(text="no such suggestion")
    page = await asyncio.to_thread(render_page, [view])
    return web.Response(text=page, content_type="text/html")


async def _roi_page(request: web.Request) -> web.Response:
    """A repository's realised-ROI page (`flujo roi --html`), behind its unguessable link."""
    from flujo.bot.page_links import ROI_PAGE, page_token
    from flujo.learn.roi_page import roi_page

    bot = request.app[BOT]
    repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
    expected = page_token(bot.context.page_key, repo, ROI_PAGE)
    if not hmac.compare_digest(expected, request.match_info["token"]):
        raise web.HTTPNotFound(text="no such page")
    store = bot.telemetry.store(repo)
    page = await asyncio.to_thread(roi_page, store, repo)
    return web.Response(text=page, content_type="text/html")


async def _registry_page(request: web.Request) -> web.Response:
    """The skills the bot allows, typed, with their figures (public: no repository data)."""
    bot = request.app[BOT]
    if bot.registry_page is None:

        def render() -> str:
            from flujo.learn.registry_page import render_registry_page
            from flujo.spec.skill_figures import Manifest, listings

            manifest = Manifest.load()
            return render_registry_page(listings(bot.context.registry, manifest), manifest)

        bot.registry_page = await asyncio.to_thread(render)
    return web.Response(text=bot.registry_page, content_type="text/html")


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    bot = request.app[BOT]
    body, content_type = await bot.metrics.exposition(bot.queue, request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _readyz(request: web.Request) -> web.Response:
    bot = request.app[BOT]
    try:
        queued = bot.queue.count(("queued", "running"))
    except Exception as exc:  # the store is unusable: not ready
        return web.json_response({"status": "unavailable", "error": str(exc)}, status=503)
    return web.json_response({"status": "ready", "pending_jobs": queued})


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException:
        raise
    except Exception as exc:  # one bounded line in the log, a plain answer to the caller
        reason = f"error on {request.method}: {type(exc).__name__}: {exc}"
        request.app[REFUSALS].refused(bounded(request.path, 64), 500, reason, request.remote)
        log.debug("details", exc_info=exc)
        return web.json_response({"error": "internal error"}, status=500)
