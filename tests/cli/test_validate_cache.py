"""`flujo validate` caches results: a hit reports exactly what a cold check does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.spec import check_cache
from flujo.spec.config import find_config

BROKEN = """version: "1"
name: broken
agents:
  a: {model: 'openai:gpt-4o-mini'}
steps:
  - name: one
    uses: agents.a
    input: "{{ steps.nowhere.output }}"
  - name: two
    uses: not_a_skill
  - name: one
    uses: passthrough
"""

VALID = """version: "1"
name: fine
steps:
  - {name: one, uses: passthrough}
  - {name: two, uses: passthrough}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("FLUJO_CACHE_DIR", str(folder))
    monkeypatch.delenv("FLUJO_NO_CACHE", raising=False)
    return folder


@pytest.mark.parametrize("output", ["text", "json", "github"])
@pytest.mark.parametrize("extra", [[], ["--strict"], ["--verbose"]])
def test_a_hit_reports_what_a_cold_check_does(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, output: str, extra: list[str]
) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    (tmp_path / "fine.yaml").write_text(VALID)
    (tmp_path / "notyaml.yaml").write_text("steps: [unclosed\n")
    args = ["validate", str(tmp_path / "specs"), "--format", output, *extra]
    (tmp_path / "specs").mkdir()
    for name in ("broken.yaml", "fine.yaml", "notyaml.yaml"):
        (tmp_path / name).rename(tmp_path / "specs" / name)
    monkeypatch.setenv("FLUJO_NO_CACHE", "1")
    cold = invoke(*args)
    assert not cache.exists()
    monkeypatch.delenv("FLUJO_NO_CACHE")
    first = invoke(*args)
    assert len(list(cache.glob("*.json"))) == 3
    hit = invoke(*args)
    assert cold == first == hit
    assert cold[0] == 1


def test_a_changed_file_config_or_flujo_is_checked_again(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    spec = tmp_path / "flows" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text(
        VALID.replace("{name: one, uses: passthrough}", "{name: one, uses: 'acme.x:run'}")
    )
    code, out, _ = invoke("validate", str(spec))
    assert code == 1 and "allow-list" in out
    config = tmp_path / ".github" / "flujo.yml"
    config.parent.mkdir()
    config.write_text("skills:\n  allow: ['acme.x:run']\n")
    assert invoke("validate", str(spec))[0] == 0  # the config is part of the key
    spec.write_text(VALID.replace("two", "one"))
    code, out, _ = invoke("validate", str(spec))
    assert code == 1 and "one" in out
    entries = len(list(cache.glob("*.json")))
    monkeypatch.setattr(check_cache, "_flujo_fingerprint", "another flujo")
    assert invoke("validate", str(spec))[0] == 1
    assert len(list(cache.glob("*.json"))) == entries + 1  # never the other version's


def test_specs_with_imports_are_not_cached(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "child.yaml").write_text(VALID)
    parent = tmp_path / "parent.yaml"
    parent.write_text(
        'version: "1"\nname: parent\nimports:\n  child: child.yaml\n'
        "steps:\n  - {name: run_child, uses: imports.child}\n"
    )
    first = invoke("validate", str(parent))
    assert not list(cache.glob("*.json"))
    (tmp_path / "child.yaml").write_text("steps: [unclosed\n")
    assert invoke("validate", str(parent)) != first


def test_the_lookups_match_the_ones_they_stand_in_for(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".github").mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()
    (tmp_path / "repo" / ".github" / "flujo.yaml").write_text("{}\n")
    spec = tmp_path / "repo" / "a" / "b.yaml"
    spec.parent.mkdir()
    spec.write_text(VALID)
    assert check_cache.find_config(spec) == find_config(spec)
    assert check_cache.find_config(tmp_path / "x.yaml") == find_config(tmp_path / "x.yaml")
    assert check_cache.CONFIG_NAMES == __import__("flujo.spec.config").spec.config.CONFIG_NAMES


def test_the_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_cache, "MAX_ENTRIES", 4)
    monkeypatch.setenv("FLUJO_CACHE_DIR", str(tmp_path / "c"))
    store = check_cache.CheckCache()
    entry = check_cache.CachedCheck([], None, None)
    for i in range(10):
        store.put(tmp_path / "x.yaml", f"{i:064x}", entry)
    assert 2 <= len(list((tmp_path / "c").glob("*.json"))) <= 4


def test_a_hit_imports_neither_the_model_nor_yaml(tmp_path: Path) -> None:
    spec = tmp_path / "fine.yaml"
    spec.write_text(VALID)
    env = dict(os.environ, FLUJO_CACHE_DIR=str(tmp_path / "c"))
    code = (
        "import sys; from flujo.cli import main\n"
        "try:\n    main(['validate', sys.argv[1]])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pydantic', 'ruamel.yaml', 'flujo.spec.model') "
        "if m in sys.modules), file=sys.stderr)"
    )
    argv = [sys.executable, "-c", code, str(spec)]
    cold = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    hit = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    assert cold.stdout == hit.stdout
    assert "'flujo.spec.model'" in cold.stderr
    assert hit.stderr.strip().endswith("[]")


def test_validate_parses_each_spec_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    # A large spec's YAML is most of what checking it costs (a 700 KB one: seconds).
    import flujo.spec.load as load

    parsed: list[str] = []
    original = load.parse

    def counting(text: str | bytes, *args: object, **kwargs: object) -> object:
        parsed.append(str(args[0]) if args else "<string>")
        return original(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(load, "parse", counting)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    (tmp_path / "fine.yaml").write_text(VALID)
    code, _, _ = invoke("validate", str(tmp_path / "broken.yaml"), str(tmp_path / "fine.yaml"))
    assert code == 1
    assert len(parsed) == 2, parsed
