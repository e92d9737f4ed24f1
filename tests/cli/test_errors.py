"""One error vocabulary: every error of the product is a FlujoError with a documented exit
code, and the command line maps them in one place, with their message and no traceback."""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import flujo.cli
from flujo.cli import Interrupted, InvalidInput, UsageError, cli, main
from flujo.engine.store import StoreError
from flujo.spec.errors import EXIT_CODES, EXIT_NO_TESTS, Diagnostic, FlujoError, SpecError
from tests.cli.test_house import source_modules
from tests.support.specs import ROOT

# Exceptions that never reach a user (control flow inside one module), and why.
INTERNAL = {
    "flujo.spec.expressions.errors._Refused": "turned into an ExpressionError by its node",
    "flujo.spec.splice.Unsupported": "the patch falls back to the tree edit path",
    "flujo.spec.splice._Stale": "the spliced text is parsed again",
}


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in the product's modules, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for _path, name in source_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{attr}"] = value
    return found


def test_every_exception_of_the_product_is_a_flujo_error_with_a_documented_exit_code() -> None:
    classes = exception_classes()
    for name in [
        "flujo.spec.errors.SpecError",
        "flujo.spec.edit.PatchError",
        "flujo.engine.store.StoreError",
        "flujo.bot.queue.QueueUnavailable",
        "flujo.bot.queue.RetryLater",
        "flujo.bot.queue.Permanent",
        "flujo.cli.diff._Trouble",
        "flujo.cli.UsageError",
    ]:
        assert name in classes  # the walk sees every layer
    assert len(classes) >= 25
    assert set(INTERNAL) <= set(classes)  # the exceptions listed still exist
    outside = [
        name
        for name, cls in classes.items()
        if name not in INTERNAL and not issubclass(cls, FlujoError)
    ]
    assert outside == []
    undocumented = {
        name: cls.exit_code
        for name, cls in classes.items()
        if issubclass(cls, FlujoError) and cls.exit_code not in EXIT_CODES
    }
    assert undocumented == {}


def test_the_exit_codes_are_the_ones_the_command_line_documents() -> None:
    doc = flujo.cli.__doc__ or ""
    documented = {int(code) for code in re.findall(r"^\s+(\d+)\s+\S", doc, re.M)}
    assert documented == EXIT_CODES | {0, EXIT_NO_TESTS}  # 5: `flujo test` collected none


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("flujo.spec.errors.SpecError", 1),
        ("flujo.spec.edit.PatchError", 1),
        ("flujo.spec.registry.RegistryError", 1),
        ("flujo.spec.expressions.errors.ExpressionError", 1),
        ("flujo.engine.store.StoreError", 2),
        ("flujo.engine.telemetry_import.TelemetryImportError", 2),
        ("flujo.learn.meta_agents.AgentUnavailable", 2),
        ("flujo.bot.settings.SettingsError", 2),
        ("flujo.bot.local.GitError", 2),
        ("flujo.bot.queue.QueueUnavailable", 2),
        ("flujo.cli.diff._Trouble", 2),
        ("flujo.cli.Interrupted", 130),
    ],
)
def test_exit_codes_match_what_the_commands_document(name: str, code: int) -> None:
    assert exception_classes()[name].exit_code == code  # type: ignore[attr-defined]


def test_errors_keep_the_bases_code_catches_them_by() -> None:
    from flujo.spec.edit import PatchError
    from flujo.spec.expressions import ExpressionError
    from flujo.spec.registry import RegistryError

    assert issubclass(PatchError, ValueError) and issubclass(ExpressionError, ValueError)
    assert issubclass(RegistryError, LookupError)


def test_show_prints_the_message_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    StoreError("the run store x.db has schema version 9").show()
    assert capsys.readouterr() == ("", "flujo: the run store x.db has schema version 9\n")
    UsageError("flujo runs: no run store at x.db\nsecond line").show()
    assert capsys.readouterr().err == "flujo runs: no run store at x.db\nsecond line\n"


def test_a_spec_error_shows_each_diagnostic_on_its_own_line() -> None:
    error = SpecError(
        [
            Diagnostic("bad key", "schema", "p.yaml", 2, 3, "steps[0]"),
            Diagnostic("unused", "unused", "p.yaml", 4, 1, severity="warning"),
        ]
    )
    out = io.StringIO()
    error.show(out)
    assert out.getvalue() == (
        "p.yaml:2:3: error: bad key (steps[0])\np.yaml:4:1: warning: unused\n"
    )
    assert error.exit_code == 1


def explode_with(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    import flujo.spec.load

    def explode(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(flujo.spec.load, "check", explode)


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (StoreError("the run store x.db is newer"), 2, "flujo: the run store x.db is newer"),
        (InvalidInput("p.json: error: bad op"), 1, "p.json: error: bad op"),
        (UsageError("flujo x: one\nflujo x: two"), 2, "flujo x: one\nflujo x: two"),
        (Interrupted("flujo: interrupted"), 130, "flujo: interrupted"),
    ],
    ids=["product", "invalid", "usage", "interrupted"],
)
def test_main_maps_a_flujo_error_to_its_exit_code_and_message(
    write,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: FlujoError,
    code: int,
    message: str,
) -> None:
    explode_with(monkeypatch, error)
    path = write("ok.yaml", "steps: [{name: a}]\n")
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(path)])
    assert exited.value.code == code
    assert capsys.readouterr().err == message + "\n"  # no traceback, no "internal error"


def test_a_spec_error_raised_by_a_command_shows_its_diagnostics(
    write,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write("broken.yaml", "steps:\n  - name: a\n    uses: json_pase\n")
    with pytest.raises(SystemExit) as exited:
        main(["run", str(path), "--fake"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        f"{path}:3:5: error: unknown skill 'json_pase'; did you mean 'json_parse'? "
        "(steps[0].uses)\n"
    )


def test_the_click_runner_sees_the_same_mapping(write, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    explode_with(monkeypatch, StoreError("the run store x.db cannot be read"))
    path = write("ok.yaml", "steps: [{name: a}]\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr == "flujo: the run store x.db cannot be read\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_flujo_error_from_a_subcommand_group_is_mapped_too(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["runs", "list", "--store", str(tmp_path / "none.db")])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"flujo runs: no run store at {tmp_path / 'none.db'} (run a pipeline first)\n"
    )


def test_commands_exit_only_through_exit_with_or_a_flujo_error() -> None:
    """No `SystemExit`/`sys.exit` in the commands: errors are FlujoErrors, results `exit_with`."""
    found = []
    for path in sorted((ROOT / "flujo" / "cli").glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = (
                node.id
                if isinstance(node, ast.Name)
                else node.attr
                if isinstance(node, ast.Attribute)
                else None
            )
            if name in ("SystemExit", "exit", "_exit"):
                found.append(f"{path.name}:{node.lineno}: {name}")
    assert found == []


def test_exit_with_ends_a_command_with_its_result_code() -> None:
    @click.command()
    def probe() -> None:
        flujo.cli.exit_with(1)

    assert CliRunner().invoke(probe, []).exit_code == 1
