"""StepRegistry: an allow-list that never imports what it does not allow."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flujo.spec import skills
from flujo.spec.load import check
from flujo.spec.registry import RegistryError, StepRegistry

BUILTIN_NAMES = [
    "passthrough",
    "json_parse",
    "json_dump",
    "regex_extract",
    "sql_validate",
    "template_render",
    "non_empty",
    "json_schema",
    "sql_compiles",
    "max_length",
]


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution that publishes a skill through the entry-point group,
    and two importable modules that leave a marker file when imported."""
    dist = tmp_path / "flujo_fake_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flujo-fake-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[flujo.skills]\nshout = fake_plugin_mod:shout\n")
    for module in ("fake_plugin_mod", "repo_skills", "evil_mod"):
        (tmp_path / f"{module}.py").write_text(
            "from pathlib import Path\n"
            "Path(__file__).with_suffix('.imported').touch()\n"
            "def shout(value):\n    '''Upper-case the text.'''\n    return str(value).upper()\n"
            "run = shout\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("fake_plugin_mod", "repo_skills", "evil_mod"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    return tmp_path


def imported(plugin_dir: Path, module: str) -> bool:
    return (plugin_dir / f"{module}.imported").exists()


def test_builtins_are_listed_with_their_metadata() -> None:
    manifest = {s.name: s for s in StepRegistry(entry_points=False).manifest()}
    assert list(manifest) == BUILTIN_NAMES
    assert manifest["non_empty"].kind == "validator"
    assert manifest["json_parse"].kind == "transform"
    assert manifest["regex_extract"].params["pattern"].required
    entry = manifest["json_schema"].to_dict()
    assert entry["target"] == "flujo.spec.skills:json_schema"
    assert entry["est_cost_usd"] is None and entry["est_latency_s"] is None
    assert entry["est_success"] is None and entry["side_effects"] == []


def test_a_disallowed_import_path_is_an_error_and_is_never_imported(plugin_dir: Path) -> None:
    spec = plugin_dir / "spec.yaml"
    spec.write_text("steps:\n  - name: a\n    uses: evil_mod:run\n")
    _, diagnostics = check(spec)
    assert [(d.line, d.code) for d in diagnostics] == [(3, "unknown-skill")]
    assert "not in the skill allow-list" in diagnostics[0].message
    with pytest.raises(RegistryError):
        StepRegistry().resolve("evil_mod:run")
    assert not imported(plugin_dir, "evil_mod")


def test_the_repository_config_allows_listed_paths_without_importing_them(
    plugin_dir: Path,
) -> None:
    repo = plugin_dir / "repo"
    (repo / ".github").mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / ".github" / "flujo.yml").write_text("skills:\n  allow:\n    - repo_skills:shout\n")
    spec = repo / "pipelines" / "p.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "steps:\n  - {name: a, uses: 'repo_skills:shout'}\n  - {name: b, uses: 'evil_mod:run'}\n"
    )
    _, diagnostics = check(spec)
    assert [d.yaml_path for d in diagnostics] == ["steps[1].uses"]
    assert not imported(plugin_dir, "repo_skills") and not imported(plugin_dir, "evil_mod")
    registry = StepRegistry(allow=["repo_skills:shout"])
    assert registry.resolve("repo_skills:shout")("hi") == "HI"
    assert imported(plugin_dir, "repo_skills")


def test_a_module_wildcard_allows_every_attribute_of_that_module_only() -> None:
    registry = StepRegistry(allow=["repo_skills:*"], entry_points=False)
    assert registry.problem("repo_skills:shout") is None
    assert registry.problem("repo_skills.sub:shout") is not None
    assert registry.problem("not a path:x") is not None


def test_a_module_wildcard_allows_only_callables_defined_in_it() -> None:
    registry = StepRegistry(allow=["tests.support.hostile_skills:*"], entry_points=False)
    module = "tests.support.hostile_skills"
    assert registry.resolve(f"{module}:defined")(1) == 1
    for dotted in ("os.system", "defined.__globals__.__getitem__", "__loader__"):
        assert registry.problem(f"{module}:{dotted}") is not None, dotted
        with pytest.raises(RegistryError):
            registry.resolve(f"{module}:{dotted}")
    with pytest.raises(RegistryError):
        registry.resolve(f"{module}:os")  # a module, not a callable
    with pytest.raises(RegistryError, match="not defined in"):
        registry.resolve(f"{module}:system")  # `from os import system`
    exact = StepRegistry(allow=[f"{module}:system"], entry_points=False)
    assert exact.resolve(f"{module}:system") is not None  # listed by name: the owner's call


def test_entry_point_skills_are_allowed_by_name_and_loaded_only_when_used(
    plugin_dir: Path,
) -> None:
    registry = StepRegistry()
    assert registry.problem("shout") is None
    assert registry.problem("fake_plugin_mod:shout") is None
    assert not imported(plugin_dir, "fake_plugin_mod")
    manifest = {s.name: s for s in registry.manifest()}
    assert manifest["shout"].origin == "entry-point:flujo.skills"
    assert manifest["shout"].summary == "Upper-case the text."
    assert registry.resolve("shout")("x") == "X"


def test_registry_list_prints_the_manifest_as_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flujo", "registry", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    names = [entry["name"] for entry in json.loads(done.stdout)]
    assert names[: len(BUILTIN_NAMES)] == BUILTIN_NAMES


def test_json_parse_accepts_fenced_blocks() -> None:
    assert skills.json_parse('```json\n{"a": 1}\n```') == {"a": 1}
    assert skills.json_parse(" [1, 2] ") == [1, 2]
    with pytest.raises(ValueError):
        skills.json_parse("not json")


def test_regex_extract_is_bounded_in_time() -> None:
    assert skills.regex_extract("error: E42 here", r"error: (\w+)", group=1) == "E42"
    assert skills.regex_extract("a1 b2", r"\w\d", all=True) == ["a1", "b2"]
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        skills.regex_extract("a" * 5000 + "b", r"(a|aa)+$")
    assert time.perf_counter() - started < 5


def test_template_render_is_sandboxed() -> None:
    assert skills.template_render({"who": "you"}, "hi {{ input.who }}") == "hi you"
    from jinja2.exceptions import SecurityError, UndefinedError

    with pytest.raises((SecurityError, UndefinedError)):
        skills.template_render("x", "{{ input.__class__.__mro__[1].__subclasses__() }}")


def test_builtin_validators() -> None:
    assert skills.non_empty("  ") == "output is empty"
    assert skills.non_empty({"a": 1}) is None
    assert skills.max_length("abcd", max=3) == "output has length 4, more than 3"
    assert skills.max_length([1, 2], max=3) is None
    schema = {"type": "object", "required": ["a"]}
    assert skills.json_schema('{"a": 1}', schema=schema) is None
    assert skills.json_schema({"b": 1}, schema=schema) == "'a' is a required property"
    assert skills.json_schema("{oops", schema=schema).startswith("output is not JSON")


def test_patterns_that_would_compile_for_ever_are_refused() -> None:
    started = time.perf_counter()
    assert skills.pattern_problem("(?:a{1000}){1000}") is not None
    assert skills.pattern_problem("((a{100}){100}){100}") is not None
    assert skills.pattern_problem("x" * 2000) is not None
    assert skills.pattern_problem(r"\d{4}-\d{2}-\d{2}") is None
    with pytest.raises(ValueError, match="repeats too much"):
        skills.regex_extract("aaa", "(?:a{1000}){1000}")
    assert time.perf_counter() - started < 1


def test_validate_refuses_a_pattern_that_would_compile_for_ever() -> None:
    text = (
        "steps:\n  - name: a\n    uses: regex_extract\n    with: {pattern: '(?:a{1000}){1000}'}\n"
    )
    _, diagnostics = check(text)
    assert [(d.line, d.code) for d in diagnostics] == [(4, "skill-params")]
    assert "repeats too much" in diagnostics[0].message
