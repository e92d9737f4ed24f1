"""The App manifest and the container image description stay true to the code."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from ruamel.yaml import YAML

from flujo.bot.routers import router
from tests.support.specs import ROOT


def manifest() -> dict:  # type: ignore[type-arg]
    return dict(YAML(typ="safe").load((ROOT / "app.yml").read_text(encoding="utf-8")))


def routed_events() -> set[str]:
    """GitHub events the bot routes (its own scheduled jobs, `flujo_…`, are not GitHub's)."""
    events = set(router._shallow_routes) | set(router._deep_routes)
    return {e for e in events if not e.startswith("flujo_")}


def test_the_manifest_asks_for_the_permissions_the_bot_uses() -> None:
    permissions = manifest()["default_permissions"]
    assert permissions == {
        "checks": "write",
        "contents": "write",
        "pull_requests": "write",
        "metadata": "read",
        "issues": "write",
    }


def test_every_routed_event_is_subscribed_in_the_manifest() -> None:
    subscribed = set(manifest()["default_events"]) | {"installation"}  # always sent
    assert routed_events() <= subscribed
    assert subscribed <= routed_events()  # and nothing is subscribed for nothing


def test_the_manifest_points_webhooks_at_the_bots_route() -> None:
    assert manifest()["hook_attributes"]["url"].endswith("/webhooks")


def test_the_dockerfile_runs_the_locked_bot_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "uv sync --frozen --no-dev" in text  # the lock file, nothing else
    assert re.search(r"^USER flujo$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["flujo", "bot"]' in text and 'CMD ["serve"]' in text
    assert "/data/.env" in text and re.search(r"^WORKDIR /data$", text, re.M)  # setup's file
    uv = re.search(r"uv==([\d.]+)", text)
    assert uv and f"UV_VERSION={uv.group(1)}" in (ROOT / "dev").read_text()
    # Every package folder is copied into the image.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = {p.split("/")[0] for p in config["tool"]["setuptools"]["package-dir"].values()}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, re.M))
    assert folders <= copied


def test_every_subpackage_and_data_file_is_shipped() -> None:
    """The explicit `packages` list names every package folder, and the package-data
    globs cover every non-Python file the code reads at run time."""
    import fnmatch

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join((package, *relative.parts)))
    assert found <= set(config["packages"])

    def folder_of(package: str) -> Path:
        base = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
        return ROOT / mapping[base] / Path(*package[len(base) :].split(".")[1:])

    for package, globs in config["package-data"].items():
        folder = folder_of(package)
        for path in folder.iterdir():
            if path.is_file() and path.suffix in (".j2", ".json", ".md", ".html", ".yaml", ".yml"):
                assert any(fnmatch.fnmatch(path.name, g) for g in globs), path
    assert any(g.startswith("vendor/") for g in config["package-data"]["flujo.templates"])


def compose() -> dict:  # type: ignore[type-arg]
    return dict(YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text(encoding="utf-8")))


def bot_services() -> dict[str, dict]:  # type: ignore[type-arg]
    """The services built from the Dockerfile (the bot's processes)."""
    return {name: s for name, s in compose()["services"].items() if "build" in s}


def test_the_compose_services_run_real_bot_commands() -> None:
    from click.testing import CliRunner

    from flujo.cli import cli
    from flujo.cli.bot import bot

    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.+)$", dockerfile(), re.M)[-1])
    default = json.loads(re.findall(r"^CMD (.+)$", dockerfile(), re.M)[-1])
    commands = {}
    for name, service in bot_services().items():
        argv = [*service.get("entrypoint", entrypoint), *service.get("command", default)]
        assert argv[:2] == ["flujo", "bot"] and argv[2] in bot.commands, (name, argv)
        shown = CliRunner().invoke(cli, [*argv[1:], "--help"])
        assert shown.exit_code == 0, shown.output
        commands[name] = argv[2]
    assert sorted(commands.values()) == ["serve", "worker"]
    services = bot_services()
    serving = next(n for n, c in commands.items() if c == "serve")
    port = re.search(r"FLUJO_BOT_PORT=(\d+)", dockerfile())
    assert port and any(p.endswith(f":{port.group(1)}") for p in services[serving]["ports"])
    working = next(n for n, c in commands.items() if c == "worker")
    # A worker serves no /healthz, so the image's health check (which asks it) is off.
    assert services[working]["healthcheck"] == {"disable": True}
    assert "healthcheck" not in services[serving]


def test_the_compose_environment_names_real_settings() -> None:
    from flujo.bot.settings import BotSettings, env_name

    known = {env_name(field) for field in BotSettings.model_fields}
    database = compose()["services"]["db"]
    secrets = compose()["secrets"]
    for name, service in bot_services().items():
        env = service["environment"]
        unknown = {key for key in env if key.startswith("FLUJO_") and key not in known}
        assert not unknown, f"{name}: not settings: {unknown}"
        for key, value in env.items():  # values from .env are passed under their own name
            for found in re.findall(r"\$\{(\w+)", str(value)):
                assert found == key
        # The URL is one the settings take, and names the database service's credentials.
        url = env["FLUJO_BOT_DATABASE_URL"]
        assert BotSettings(database_url=url).records() == url
        db = database["environment"]
        expected = f"postgresql://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@db:5432/"
        assert url == expected + db["POSTGRES_DB"]
        assert service["depends_on"] == {"db": {"condition": "service_healthy"}}
        assert "pg_isready" in database["healthcheck"]["test"]
        # The key file is the service's secret, and the secret is a file.
        key = env["FLUJO_BOT_PRIVATE_KEY_FILE"]
        assert key.startswith("/run/secrets/") and key.rsplit("/", 1)[1] in service["secrets"]
        assert all("file" in secrets[s] for s in service["secrets"])


def test_no_two_bot_processes_share_a_snapshot_folder() -> None:
    """A bot clears its snapshot folder (beside FLUJO_BOT_DB) when it starts: processes
    sharing one would remove each other's snapshots of the commits being checked."""
    for name, service in bot_services().items():
        named = [v for v in service.get("volumes", []) if not str(v).startswith(("/", "."))]
        assert not named, f"{name} mounts a named volume: {named}"


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")
