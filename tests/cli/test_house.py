"""The house rules that hold the project together: layers, a clone that tests itself, no network."""

from __future__ import annotations

import ast
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.network import NetworkBlocked
from tests.support.specs import ROOT

HERE = Path(__file__).resolve()

# The package `flujo.X` lives in folder X (pyproject's package-dir); lower layers may never
# import higher ones, lazily inside a function or not. `templates` sits beside `spec`.
LAYERS = {"spec": 0, "templates": 0, "engine": 1, "learn": 2, "bot": 3, "cli": 4}
FOLDERS = {
    "spec": "spec",
    "templates": "templates",
    "engine": "engine",
    "learn": "learn",
    "bot": "bot",
    "cli": "flujo/cli",
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "flujo" and parts[1] in LAYERS else None


def imports_of(source: str, module: str, package: bool = False) -> list[tuple[int, str]]:
    """Every module `source` imports (top level, in functions, under TYPE_CHECKING)."""
    tree = ast.parse(source)
    package_name = module if package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package_name.split(".")
                base = parts[: len(parts) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def source_modules() -> list[tuple[str, str]]:
    modules = []
    for name, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            modules.append((str(path.relative_to(ROOT)), ".".join(["flujo", name, *parts])))
    return modules


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for path, module in source_modules():
        here = layer_of(module)
        assert here is not None
        source = (ROOT / path).read_text(encoding="utf-8")
        for line, target in imports_of(source, module, path.endswith("__init__.py")):
            there = layer_of(target)
            if there is not None and LAYERS[there] > LAYERS[here]:
                upward.append(f"{path}:{line}: {here} imports {target} ({there})")
    assert upward == []


def test_the_layer_check_sees_lazy_relative_and_dynamic_imports() -> None:
    source = (
        "import importlib\n"
        "def f():\n"
        "    from flujo.bot.app import create_app\n"
        "    from . import load\n"
        "    importlib.import_module('flujo.learn.suggest')\n"
    )
    found = imports_of(source, "flujo.spec.probe")
    assert (3, "flujo.bot.app") in found
    assert (4, "flujo.spec.load") in found
    assert (5, "flujo.learn.suggest") in found
    assert [layer_of(t) for _, t in found if t.startswith("flujo.")] == [
        "bot",
        "bot",
        "spec",
        "spec",
        "learn",
    ]


# -- one place for each fact ---------------------------------------------------------------

# Flujo's own templates get their environment from one factory, users' templates theirs from
# one sandbox; nothing else builds a Jinja environment (a bare `Template(...)` builds one too).
TEMPLATE_FACTORIES = {"templates/environment.py", "spec/templating.py"}
JINJA_ENVIRONMENTS = {
    "Environment",
    "SandboxedEnvironment",
    "ImmutableSandboxedEnvironment",
    "NativeEnvironment",
    "Template",
}


def environments_built(source: str) -> list[tuple[int, str]]:
    """(line, name) of every call that builds a Jinja environment (`Environment(…)`,
    `jinja2.sandbox.SandboxedEnvironment(…)`, …) and every import of such a class from
    jinja2 (so an alias cannot hide a call)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in JINJA_ENVIRONMENTS:
                found.append((node.lineno, str(name)))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jinja2"):
            found += [(node.lineno, a.name) for a in node.names if a.name in JINJA_ENVIRONMENTS]
    return found


def test_jinja_environments_come_from_the_two_factories() -> None:
    elsewhere = [
        f"{path}:{line}: {name}"
        for path, _ in source_modules()
        if path not in TEMPLATE_FACTORIES
        for line, name in environments_built((ROOT / path).read_text(encoding="utf-8"))
    ]
    assert elsewhere == []
    built = {
        path: {name for _, name in environments_built((ROOT / path).read_text("utf-8"))}
        for path in TEMPLATE_FACTORIES
    }
    assert built == {
        "templates/environment.py": {"Environment"},
        "spec/templating.py": {"ImmutableSandboxedEnvironment", "Template"},  # a type hint
    }


def test_the_environment_check_sees_every_way_to_build_one() -> None:
    source = (
        "import jinja2\n"
        "from jinja2.sandbox import SandboxedEnvironment as Sandbox\n"
        "a = jinja2.Environment()\n"
        "b = Sandbox()\n"
        "c = jinja2.Template('{{ x }}')\n"
        "d = jinja2.sandbox.ImmutableSandboxedEnvironment()\n"
    )
    assert environments_built(source) == [
        (2, "SandboxedEnvironment"),
        (3, "Environment"),
        (5, "Template"),
        (6, "ImmutableSandboxedEnvironment"),
    ]


def test_githubs_size_limit_is_written_once() -> None:
    """`flujo.templates.fit.GITHUB_TEXT_LIMIT`; every other place imports it."""
    written = []
    for path, _ in source_modules():
        text = (ROOT / path).read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and node.value in (65_535, 65_536):
                literal = ast.get_source_segment(text, node) or ""
                if not literal.lower().startswith("0x"):  # 0xFFFF is a code point, not a size
                    written.append(f"{path}:{node.lineno}")
    assert len(written) == 1 and written[0].startswith("templates/fit.py:"), written


def test_every_source_folder_is_a_mapped_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name, folder in FOLDERS.items():
        if folder.startswith("flujo/"):
            continue
        assert f'"flujo.{name}" = "{folder}"' in pyproject


def test_the_tests_need_nothing_beside_the_clone() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "tests", "benchmarks", "docs", "dev", ".ci"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # Spelled in pieces, so that this file does not find itself.
    vendored = "share" + "d/github"
    beside, quoted = "../" + vendored, '"share' + 'd"'
    outside = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in {".py", ".mjs", ""} or not path.is_file() or path == HERE:
            continue
        if path.resolve() == Path(__file__).resolve():
            continue  # this test names what it looks for
        text = path.read_text(encoding="utf-8", errors="replace")
        if vendored in text.replace(beside, "") or quoted in text:
            outside.append(name)
    assert outside == []
    assert (ROOT / "tests" / "github" / "api.github.com.subset.json").is_file()
    assert (ROOT / "tests" / "github" / "LICENSE.openapi").is_file()


def test_tests_cannot_reach_beyond_loopback() -> None:
    with socket.socket() as sock, pytest.raises(NetworkBlocked, match=r"203\.0\.113\.9"):
        sock.connect(("203.0.113.9", 80))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())  # loopback is fine
