"""Registering the App from its manifest: `flujo bot setup` serves the page and GitHub's
redirect, exchanges the code on the fake GitHub, stores the App's settings (0600) where
`flujo bot serve` reads them, and accepts its one-time state token once, from nobody else."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from ruamel.yaml import YAML

from flujo.bot.registration import Registered, Registration, create_registration_app, store
from tests.support.bot import GOOD
from tests.support.bot_process import free_port, push, settled, start_bot
from tests.support.fakegithub.server import FakeGitHub
from tests.support.specs import ROOT

CONVERSION = "/app-manifests/{code}/conversions"


class Form(HTMLParser):
    """The manifest form of the setup page: its action and its hidden `manifest` field."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.action = ""
        self.method = ""
        self.fields: dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action, self.method = values.get("action", ""), values.get("method", "")
        if tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as reply:
        return reply.status, await reply.text()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_setup_registers_the_app_and_serve_then_checks_a_commit(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    folder = tmp_path / "bot"
    folder.mkdir()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "FLUJO_BOT_PUBLIC_URL": public,
        "FLUJO_BOT_GITHUB_URL": fake_github.base_url,
        "FLUJO_BOT_DB": str(folder / "bot.db"),
        "FLUJO_BOT_HOST": "127.0.0.1",
        "FLUJO_BOT_PORT": str(port),
    }
    setup = subprocess.Popen(
        [sys.executable, "-m", "flujo", "bot", "setup", "--name", "Flujo acme"],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert setup.stderr is not None
        first = setup.stderr.readline()
        assert first.startswith("flujo bot setup: open this link"), first
        link = setup.stderr.readline().strip()
        assert link.startswith(f"{public}/setup?state=")
        state = parse_qs(urlsplit(link).query)["state"][0]

        # A stranger without the token can neither open the page nor complete the flow.
        stranger = fake_github.register_from_manifest(
            {
                "name": "x",
                "url": "https://x.invalid",
                "hook_attributes": {"url": "https://x"},
                "redirect_url": f"{public}/setup/done",
            }
        )
        assert (await get(f"{public}/setup"))[0] == 403
        assert (await get(f"{public}/setup?state=guess"))[0] == 403
        assert (await get(f"{public}/setup/done?code={stranger}&state=guess"))[0] == 403
        assert fake_github.calls("POST", CONVERSION) == []

        status, page = await get(link)
        assert status == 200
        form = Form(page)
        assert form.method == "post"
        assert form.action == f"{fake_github.base_url}/settings/apps/new?state={state}"
        manifest = json.loads(form.fields["manifest"])
        committed = YAML(typ="safe").load((ROOT / "app.yml").read_text(encoding="utf-8"))
        assert manifest == {
            **committed,
            "name": "Flujo acme",
            "hook_attributes": {**committed["hook_attributes"], "url": f"{public}/webhooks"},
            "redirect_url": f"{public}/setup/done",
        }

        # The person confirms on GitHub, which sends the browser back with a code.
        code = fake_github.register_from_manifest(manifest)
        status, done = await get(f"{manifest['redirect_url']}?code={code}&state={state}")
        assert status == 200 and "The App is registered" in done
        assert "/apps/flujo-acme/installations/new" in done
        _, err = setup.communicate(timeout=30)
    finally:
        if setup.poll() is None:
            setup.kill()
            setup.wait()
    assert setup.returncode == 0, err
    assert f"App {fake_github.app_id} (flujo-acme) registered" in err
    assert len(fake_github.calls("POST", CONVERSION)) == 1

    env_file, key_file = folder / ".env", folder / "app-private-key.pem"
    assert mode(env_file) == 0o600 and mode(key_file) == 0o600
    assert key_file.read_text(encoding="utf-8") == fake_github.private_key_pem
    stored = env_file.read_text(encoding="utf-8")
    assert f'FLUJO_BOT_APP_ID="{fake_github.app_id}"' in stored
    assert f'FLUJO_BOT_WEBHOOK_SECRET="{fake_github.webhook_secret}"' in stored
    assert fake_github.webhook_secret not in err + first + link and "PRIVATE KEY" not in err

    # `flujo bot serve` in that folder, given no credential at all, reads them and works.
    fake_github.add_installation(42, "acme")
    fake_github.create_repo("acme/flows", {"README.md": "hi\n"}, installation_id=42)
    bot = await start_bot(fake_github, folder, credentials=False)
    try:
        sha = await push(fake_github, bot, "acme/flows", {"flujo/greeter.yml": GOOD})
        assert set((await settled(fake_github, bot, "acme/flows", sha, 60)).values()) <= {
            "success",
            "failure",
        }
    finally:
        bot.stop()
    assert fake_github.webhook_secret not in bot.output()


@pytest.fixture
async def registration(fake_github: FakeGitHub, tmp_path: Path) -> Any:
    outcomes: list[Registered | None] = []
    found = Registration(
        public_url="https://flujo.example.com",
        github_url=fake_github.base_url,
        env_file=tmp_path / ".env",
        key_file=tmp_path / "data" / "app-private-key.pem",
        on_done=outcomes.append,
    )
    server = TestServer(create_registration_app(found))
    await server.start_server()
    yield found, str(server.make_url("")), outcomes
    await server.close()


async def test_the_state_token_completes_one_registration_only(
    registration: Any, fake_github: FakeGitHub
) -> None:
    found, url, outcomes = registration
    manifest = json.loads(
        Form((await get(f"{url}/setup?state={found.state}"))[1]).fields["manifest"]
    )
    first = fake_github.register_from_manifest(manifest)
    second = fake_github.register_from_manifest(manifest)
    assert (await get(f"{url}/setup/done?code={first}&state={found.state}"))[0] == 200
    status, text = await get(f"{url}/setup/done?code={second}&state={found.state}")
    assert status == 403 and "not valid (or was used already)" in text
    assert (await get(f"{url}/setup?state={found.state}"))[0] == 403
    await asyncio.sleep(0)
    assert [o.app_id for o in outcomes if o is not None] == [fake_github.app_id]
    assert len(fake_github.calls("POST", CONVERSION)) == 1


async def test_a_code_github_refuses_stores_nothing_and_says_to_start_again(
    registration: Any, fake_github: FakeGitHub
) -> None:
    found, url, outcomes = registration
    status, page = await get(f"{url}/setup/done?code=expired0code&state={found.state}")
    assert status == 502 and "Run <code>flujo bot setup</code> again" in page
    await asyncio.sleep(0)
    assert outcomes == [None]
    assert not found.env_file.exists() and not found.key_file.exists()
    assert fake_github.calls("POST", CONVERSION)[0].status == 404


def test_storing_keeps_other_settings_and_replaces_an_older_app(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "FLUJO_BOT_PUBLIC_URL=https://flujo.example.com\n"
        "FLUJO_BOT_APP_ID=1\nFLUJO_BOT_PRIVATE_KEY=old-key\n",
        encoding="utf-8",
    )
    env_file.chmod(0o644)
    app = Registered(7, "flujo", "https://github.com/apps/flujo", "PEM", 'se"cret')
    store(app, env_file, tmp_path / "key.pem")
    assert "PEM" not in repr(app) and "cret" not in repr(app)
    lines = env_file.read_text(encoding="utf-8").splitlines()
    assert lines == [
        "FLUJO_BOT_PUBLIC_URL=https://flujo.example.com",
        'FLUJO_BOT_APP_ID="7"',
        'FLUJO_BOT_WEBHOOK_SECRET="se\\"cret"',
        f'FLUJO_BOT_PRIVATE_KEY_FILE="{(tmp_path / "key.pem").resolve()}"',
    ]
    assert mode(env_file) == 0o600 and mode(tmp_path / "key.pem") == 0o600
    from flujo.bot.settings import BotSettings

    read = BotSettings(_env_file=env_file)  # as the bot reads them back
    assert (read.app(), read.secret(), read.key()) == ("7", 'se"cret', "PEM")


def test_setup_without_a_public_url_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from flujo.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLUJO_BOT_PUBLIC_URL", raising=False)
    result = CliRunner().invoke(cli, ["bot", "setup"])
    assert result.exit_code == 2
    assert "FLUJO_BOT_PUBLIC_URL: missing" in result.output and "TLS" in result.output
