"""Registering the GitHub App from its manifest (`flujo bot setup`), GitHub's manifest flow.

`GET /setup?state=TOKEN` shows a page whose form posts the manifest (`app.yml`, its URLs
pointed at FLUJO_BOT_PUBLIC_URL) to GitHub; GitHub creates the App and sends the browser
to `GET /setup/done?code=…&state=TOKEN`; the bot exchanges the code for the App's id,
private key and webhook secret and stores them, readable by its owner only (0600), in the
`.env` file and the key file that `flujo bot serve` reads. The state token is random,
shown only in the operator's terminal and accepted once, so a stranger can neither open
the page nor complete the flow (and make the bot act as an App of theirs).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

log = logging.getLogger("flujo.bot.registration")
DONE_PATH = "/setup/done"
STORED = ("FLUJO_BOT_APP_ID", "FLUJO_BOT_WEBHOOK_SECRET", "FLUJO_BOT_PRIVATE_KEY_FILE")
REPLACED = (*STORED, "FLUJO_BOT_PRIVATE_KEY")  # a key in the file would clash with the new one


def manifest(public_url: str, name: str | None = None) -> dict[str, Any]:
    """The App manifest (`app.yml`) with its webhook and redirect URLs under `public_url`."""
    from ruamel.yaml import YAML

    text = files("flujo.bot").joinpath("app.yml").read_text(encoding="utf-8")
    data: dict[str, Any] = dict(YAML(typ="safe").load(text))
    root = public_url.rstrip("/")
    data["hook_attributes"] = {**data["hook_attributes"], "url": f"{root}/webhooks"}
    data["redirect_url"] = f"{root}{DONE_PATH}"
    if name:
        data["name"] = name
    return data


def form_action(github_web_url: str, state: str, organization: str | None = None) -> str:
    """Where the manifest form posts: the user's or an organization's "new App" page."""
    owner = f"/organizations/{quote(organization, safe='')}" if organization else ""
    return f"{github_web_url}{owner}/settings/apps/new?{urlencode({'state': state})}"


@dataclass(frozen=True)
class Registered:
    """The App GitHub created; `repr` never shows the key or the secret."""

    app_id: int
    slug: str
    html_url: str
    pem: str = field(repr=False)
    webhook_secret: str = field(repr=False)


def store(app: Registered, env_file: Path, key_file: Path) -> None:
    """Write the key to `key_file` and the App id, webhook secret and key path to
    `env_file` (other lines kept), both created with mode 0600 and replaced atomically."""
    _write_private(key_file, app.pem)
    kept: list[str] = []
    if env_file.exists():
        for line in env_file.read_text(encoding="utf-8").splitlines():
            name = line.split("=", 1)[0].strip().removeprefix("export ").strip()
            if name not in REPLACED:
                kept.append(line)
    values = (str(app.app_id), app.webhook_secret, str(key_file.resolve()))
    lines = [*kept, *(f"{name}={_quoted(v)}" for name, v in zip(STORED, values, strict=True))]
    _write_private(env_file, "\n".join(lines) + "\n")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass
class Registration:
    """One registration: the state token, where to store the App, what to call when done."""

    public_url: str
    github_url: str
    env_file: Path
    key_file: Path
    name: str | None = None
    organization: str | None = None
    state: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    on_done: Callable[[Registered | None], None] | None = None
    used: bool = False

    @property
    def link(self) -> str:
        """What the operator opens (printed once, in the terminal)."""
        return f"{self.public_url.rstrip('/')}/setup?{urlencode({'state': self.state})}"

    def _accepts(self, request: web.Request) -> bool:
        given = request.query.get("state", "")
        return not self.used and hmac.compare_digest(given.encode(), self.state.encode())

    async def page(self, request: web.Request) -> web.Response:
        if not self._accepts(request):
            raise _refused()
        from flujo.bot.github import web_url

        return _html(
            mode="register",
            manifest=_json(manifest(self.public_url, self.name)),
            action=form_action(web_url(self.github_url), self.state, self.organization),
            organization=self.organization,
            public_url=self.public_url,
        )

    async def done(self, request: web.Request) -> web.Response:
        if not self._accepts(request):
            raise _refused()
        from flujo.bot.github import install_url

        code = request.query.get("code", "")
        if not code:
            raise web.HTTPBadRequest(text="GitHub sent no code: start again from the link")
        self.used = True  # one exchange per token, whatever GitHub answers
        app = await self._exchange(code)
        if self.on_done is not None:
            asyncio.get_running_loop().call_soon(self.on_done, app)
        if app is None:
            return _html(mode="failed", status=502)
        return _html(
            mode="done",
            slug=app.slug,
            app_id=app.app_id,
            install=install_url(app.html_url),
            env_file=str(self.env_file.resolve()),
            key_file=str(self.key_file.resolve()),
        )

    async def _exchange(self, code: str) -> Registered | None:
        import gidgethub

        from flujo.bot.github import convert_manifest

        try:
            async with aiohttp.ClientSession() as session:
                answer = await convert_manifest(session, self.github_url, code)
            app = Registered(
                app_id=int(answer["id"]),
                slug=str(answer.get("slug") or ""),
                html_url=str(answer["html_url"]),
                pem=str(answer["pem"]),
                webhook_secret=str(answer["webhook_secret"]),
            )
        except (gidgethub.GitHubException, aiohttp.ClientError, KeyError, TypeError) as exc:
            log.error("GitHub did not give the App's credentials: %s", type(exc).__name__)
            return None
        await asyncio.to_thread(store, app, self.env_file, self.key_file)
        log.info(
            "App %d (%s) registered; its settings are in %s", app.app_id, app.slug, self.env_file
        )
        return app


def create_registration_app(registration: Registration) -> web.Application:
    """`GET /setup` (the page), `GET /setup/done` (GitHub's redirect), `GET /healthz`."""
    app = web.Application()
    app.router.add_get("/setup", registration.page)
    app.router.add_get(DONE_PATH, registration.done)
    app.router.add_get("/healthz", _healthz)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "setup"})


def _refused() -> web.HTTPForbidden:
    return web.HTTPForbidden(
        text="This link is not valid (or was used already): open the link `flujo bot setup` "
        "printed, or run it again.\n"
    )


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data)


def _html(*, status: int = 200, **values: Any) -> web.Response:
    from flujo.templates.environment import product_environment

    page = product_environment(autoescape=True).get_template("setup_page.html.j2")
    return web.Response(
        text=page.render(**values),
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
