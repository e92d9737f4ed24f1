"""What a cold `flujo validate` of a small spec imports: only what checking it needs (the
guard against a slower pre-commit hook is this import graph, never a timed test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

NOT_NEEDED = (
    "openai",  # model calls: `flujo run`, not a check
    "httpx",
    "aiohttp",
    "opentelemetry",
    "deepdiff",
    "jsonschema",  # plain schemas are recognised without it
    "jinja2",  # plain templates too
    "flujo.engine",
    "flujo.learn",
    "flujo.bot",
    "flujo.spec.skill_packs",  # read for a reference that is not a built-in
    "flujo.spec.config",  # no .github/flujo.yml above the spec
)


def test_a_cold_check_of_a_small_spec_imports_only_what_it_needs(tmp_path: Path) -> None:
    env = dict(os.environ, FLUJO_NO_CACHE="1")
    code = (
        "import sys; from flujo.cli import main\n"
        "try:\n    main(['validate', sys.argv[1]])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print(sorted(m for m in {NOT_NEEDED!r} if m in sys.modules), file=sys.stderr)"
    )
    spec = ROOT / "examples" / "support_triage.yaml"
    done = subprocess.run(
        [sys.executable, "-c", code, str(spec)],
        cwd=tmp_path,  # no repository config above: the defaults
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 file checked, all valid" in done.stderr
    assert done.stderr.strip().endswith("[]"), done.stderr


def test_a_spec_naming_a_model_backed_skill_is_checked_with_it(tmp_path: Path) -> None:
    # The packs are read lazily: a misspelt one still gets its did-you-mean.
    spec = tmp_path / "sql.yaml"
    spec.write_text(
        'version: "1"\nsteps:\n'
        "  - {name: ask, uses: text_to_sql, with: {schema: 'CREATE TABLE t (a INT)'}}\n"
        "  - {name: typo, uses: text_to_sqk}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "flujo", "validate", str(spec)],
        cwd=tmp_path,
        env=dict(os.environ, FLUJO_NO_CACHE="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "unknown skill 'text_to_sqk'; did you mean 'text_to_sql'?" in done.stdout
    assert done.stdout.count("error:") == 1, done.stdout  # `text_to_sql` itself is fine


def test_preload_freezes_once_and_leaves_the_collector_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Freezing again after a check would keep that check's cyclic garbage until exit.
    import gc

    from flujo.cli.preload import preload

    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(gc.isenabled()))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    preload("json", "colorsys")
    assert "colorsys" in sys.modules
    assert frozen == [False]  # paused while importing
    assert gc.isenabled()
    preload("json", "colorsys")  # all there: nothing to do
    assert frozen == [False]
