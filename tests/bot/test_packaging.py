"""The App manifest and the container image description stay true to the code."""

from __future__ import annotations

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
