"""GitHub is reached only through bot/github.py: its REST paths, its client and the App's
authentication live there, and every other module talks to a `Forge`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.specs import ROOT

PRODUCT = ("spec", "engine", "learn", "bot", "templates", "flujo")
GITHUB_MODULE = Path("bot/github.py")
# The configurable API root's default; no request is built there.
API_ROOT_DEFAULT = Path("bot/settings.py")

REST_PATH = re.compile(
    r"^/(repos|app|apps|installation|installations|orgs|users?|rate_limit|search|graphql)(/|$|\?)"
)
GITHUB_ONLY_IMPORTS = ("gidgethub.aiohttp", "gidgethub.apps", "gidgethub.abc", "jwt")


def product_modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT) for folder in PRODUCT for path in (ROOT / folder).rglob("*.py")
    )


def github_uses(source: str, path: Path) -> list[str]:
    """Where a module's code names GitHub's API: its host, a REST path, its client or auth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if "api.github.com" in text and path != API_ROOT_DEFAULT:
                found.append(f"{path}:{node.lineno}: names api.github.com")
            if REST_PATH.match(text):
                found.append(f"{path}:{node.lineno}: builds the REST path {text!r}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith(GITHUB_ONLY_IMPORTS):
                    found.append(f"{path}:{node.lineno}: imports {name}")
    return found


def test_only_bot_github_reaches_github() -> None:
    outside = []
    for path in product_modules():
        if path == GITHUB_MODULE:
            continue
        outside += github_uses((ROOT / path).read_text(encoding="utf-8"), path)
    assert outside == []


def test_bot_github_is_where_the_rest_paths_are() -> None:
    uses = github_uses((ROOT / GITHUB_MODULE).read_text(encoding="utf-8"), GITHUB_MODULE)
    assert any("builds the REST path '/repos/" in use for use in uses)
    assert any("imports gidgethub.aiohttp" in use for use in uses)


def test_the_boundary_check_sees_hosts_paths_and_clients() -> None:
    source = (
        "from gidgethub.aiohttp import GitHubAPI\n"
        "import jwt\n"
        "URL = 'https://api.github.com/repos/o/r'\n"
        "def f(repo):\n"
        "    return f'/repos/{repo}/pulls', '/app/installations', '/repository-not-a-path'\n"
    )
    assert sorted(github_uses(source, Path("bot/probe.py"))) == [
        "bot/probe.py:1: imports gidgethub.aiohttp",
        "bot/probe.py:1: imports gidgethub.aiohttp.GitHubAPI",
        "bot/probe.py:2: imports jwt",
        "bot/probe.py:3: names api.github.com",
        "bot/probe.py:5: builds the REST path '/app/installations'",
        "bot/probe.py:5: builds the REST path '/repos/'",
    ]
