"""Hostile specs: one case per attack on the spec layer (tests/spec/test_hostile_specs.py).

Each case writes its files under an empty folder (a git repository: the folder holds
`.git`) and returns the path `flujo validate` is run on; `expect` is a substring of the
diagnostic it must produce (with exit code 1, never a signal, a timeout or exit 3).
Small cases are committed as files in tests/hostile/; large ones are generated here
(`python tests/hostile/make.py OUT` writes every case out, for other tools to reuse).

    HOSTILE: dict[name, Case]
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "hostile"
MEMORY_LIMIT = 2_000_000_000
"""Address space (bytes) a process checking one case may use."""
TIMEOUT_S = 60.0
"""Wall time a process checking one case may take: a hang or an exponential blow-up is
far beyond it; a check on a loaded machine (several seconds for the largest cases) is not."""

Content = str | bytes | Callable[[], str | bytes]


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]
    """Writes the case under an empty folder (a repository root) and returns its spec."""
    expect: str
    """Substring of the expected diagnostic (`file:line:col: error: message`)."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment the check runs with (on top of the caller's)."""
    vector: str = ""
    """The attack, in a few words."""


def _write(path: Path, content: Content) -> Path:
    data = content() if callable(content) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def _repo(folder: Path) -> Path:
    (folder / ".git").mkdir(parents=True, exist_ok=True)
    return folder


def single(content: Content, name: str = "spec.yaml") -> Callable[[Path], Path]:
    """A case that is one spec file."""
    return lambda folder: _write(_repo(folder) / name, content)


def corpus_file(name: str) -> Callable[[Path], Path]:
    """A case that is one committed file of tests/hostile/."""
    return single(lambda: (CORPUS / name).read_bytes(), name)


# -- generated cases ---------------------------------------------------------------------

STEP = "  - name: a\n    uses: passthrough\n"


def deep_dashes() -> str:
    return "steps:\n" + "- " * 30_000 + "x\n"


def deep_questions() -> str:
    return "steps:\n" + "? " * 30_000 + "x\n"


def deep_flow_after_quote() -> str:
    # `a:'b` is a plain scalar, but the old character scan took its `'` for the start of
    # a quoted one and skipped every `[` after it.
    return "name: x\nsteps:\n  - name: a\n    uses: a:'b\n    with: " + "[" * 30_000 + "\n"


def deep_flow_in_plain() -> str:
    return "steps: a" + "[" * 30_000 + "\n"


def deep_indent() -> str:
    return "steps:\n" + "".join("  " * i + f"k{i}:\n" for i in range(3000)) + "  " * 3000 + "v\n"


def regex_bomb() -> str:
    pattern = r"(?:(?:\\{1000}){100}){1000}"
    return (
        "name: x\nsteps:\n  - name: a\n    uses: regex_extract\n"
        f"    with:\n      pattern: '{pattern}'\n"
    )


def import_chain(folder: Path) -> Path:
    _repo(folder)
    count = 22
    for i in range(count):
        if i + 1 < count:
            imports = f"imports:\n  a: f{i + 1}.yaml\n  b: ./f{i + 1}.yaml\n"
            steps = "  - name: a\n    uses: imports.a\n  - name: b\n    uses: imports.b\n"
        else:
            imports = ""
            steps = "  - name: a\n    uses: passthrough\n  - name: b\n    uses: nowhere\n"
        _write(folder / f"f{i}.yaml", f"name: f{i}\n{imports}steps:\n{steps}")
    return folder / "f0.yaml"


def alias_amplification() -> str:
    return (
        "name: x\nsteps:\n  - name: a\n    uses: passthrough\n"
        "tests:\n  - name: t\n    assertions: &x\n      - nowhere.output == 1\n"
        + "".join(f"  - name: t{i}\n    assertions: *x\n" for i in range(20_000))
    )


def many_diagnostics() -> str:
    return "name: x\nsteps:\n  - name: a\n    uses: passthrough\ntests:\n" + "".join(
        f"  - name: t{i}\n    assertions: [nowhere == {i}]\n" for i in range(5_000)
    )


def huge_int() -> str:
    return f"name: x\nsteps:\n  - name: a\n    uses: passthrough\n    retries: {'9' * 4301}\n"


def huge_hex() -> str:
    # Hexadecimal has no conversion limit, but printing the number in base 10 has.
    step = "  - name: a\n    uses: passthrough\n    config:\n"
    return f"name: x\nsteps:\n{step}      max_retries: 0x{'f' * 4000}\n"


def nul_import(folder: Path) -> Path:
    return _write(
        _repo(folder) / "spec.yaml",
        'name: x\nimports:\n  a: "a\\0.yaml"\nsteps:\n  - name: a\n    uses: imports.a\n',
    )


def legacy_prompt_nul() -> str:
    return (
        'version: "0.1"\nagents:\n  a:\n    model: openai:gpt-4o\n'
        '    system_prompt: {from_file: "a\\0b"}\nsteps:\n  - name: a\n    uses: agents.a\n'
    )


def symlink_out(folder: Path) -> Path:
    outside = folder / "outside"
    _write(outside / "secret.yaml", "name: secret\nsteps:\n  - name: a\n    uses: passthrough\n")
    repo = _repo(folder / "repo")
    _write(repo / "specs" / "ok.yaml", "name: ok\nsteps:\n  - name: a\n    uses: passthrough\n")
    os.symlink(outside / "secret.yaml", repo / "specs" / "leak.yaml")
    return repo / "specs"


def symlink_dir_out(folder: Path) -> Path:
    outside = folder / "outside"
    _write(outside / "secret.yaml", "name: secret\nsteps:\n  - name: a\n    uses: passthrough\n")
    repo = _repo(folder / "repo")
    _write(repo / "specs" / "ok.yaml", "name: ok\nsteps:\n  - name: a\n    uses: passthrough\n")
    os.symlink(outside, repo / "specs" / "linked")
    return repo / "specs" / "linked" / "secret.yaml"


def symlink_to_other_repo(folder: Path) -> Path:
    # The link leads into another repository: its `.git` must not make it the root.
    other = _repo(folder / "other")
    _write(other / "secret.yaml", "name: secret\nsteps:\n  - name: a\n    uses: passthrough\n")
    repo = _repo(folder / "repo")
    _write(repo / "specs" / "ok.yaml", "name: ok\nsteps:\n  - name: a\n    uses: passthrough\n")
    os.symlink(other, repo / "specs" / "linked")
    return repo / "specs" / "linked" / "secret.yaml"


def wildcard(attr: str) -> Callable[[Path], Path]:
    """A spec using `attr` of a module its repository allow-lists with a wildcard."""

    def build(folder: Path) -> Path:
        allow = json.dumps(["tests.support.hostile_skills:*"])
        _write(_repo(folder) / ".github" / "flujo.yml", f"skills:\n  allow: {allow}\n")
        spec = f"name: x\nsteps:\n  - name: a\n    uses: tests.support.hostile_skills:{attr}\n"
        return _write(folder / "spec.yaml", spec)

    return build


HOSTILE: dict[str, Case] = {
    "deep_dashes": Case(single(deep_dashes), "nesting deeper than", vector="1 `- ` x 30,000"),
    "deep_questions": Case(single(deep_questions), "nesting deeper than", vector="1 `? ` x 30,000"),
    "deep_flow_after_quote": Case(
        single(deep_flow_after_quote), "nesting deeper than", vector="1 `[` after a quote"
    ),
    "deep_indent": Case(single(deep_indent), "nesting deeper than", vector="1 indentation"),
    "regex_bomb": Case(single(regex_bomb), "spec.yaml:6:", vector="2 regex repetition"),
    "schema_ref_file": Case(corpus_file("schema_ref_file.yaml"), "$ref", vector="3 $ref file"),
    "schema_ref_http": Case(corpus_file("schema_ref_http.yaml"), "$ref", vector="3 $ref http"),
    "schema_ref_dev_zero": Case(
        corpus_file("schema_ref_dev_zero.yaml"), "$ref", vector="3 $ref /dev/zero"
    ),
    "schema_id_host": Case(corpus_file("schema_id_host.yaml"), "$id", vector="3 $id host"),
    "schema_pattern_bomb": Case(
        corpus_file("schema_pattern_bomb.yaml"), "repeats too much", vector="3 schema pattern"
    ),
    "import_chain": Case(import_chain, "unknown skill 'nowhere'", vector="4 exponential imports"),
    "alias_amplification": Case(
        single(alias_amplification), "spec.yaml:8:9: error: unknown name 'nowhere'", vector="6"
    ),
    "many_diagnostics": Case(
        single(many_diagnostics), "4800 more diagnostics not shown", vector="6 diagnostics cap"
    ),
    "wildcard_os_system": Case(
        wildcard("os.system"), "not in the skill allow-list", vector="7 dotted wildcard"
    ),
    "wildcard_globals": Case(
        wildcard("defined.__globals__.__getitem__"),
        "not in the skill allow-list",
        vector="7 dunder wildcard",
    ),
    "huge_int": Case(single(huge_int), "spec.yaml:5:", vector="8 4,301-digit integer"),
    "huge_hex": Case(single(huge_hex), "spec.yaml:6:", vector="8 huge hexadecimal integer"),
    "nul_import": Case(nul_import, "spec.yaml:3:", vector="8 NUL in an import path"),
    "legacy_prompt_nul": Case(
        single(legacy_prompt_nul), "is not a usable path", vector="8 NUL in a 0.x prompt path"
    ),
    "symlink_out": Case(symlink_out, "outside the repository", vector="9 symlinked file"),
    "symlink_dir_out": Case(symlink_dir_out, "outside the repository", vector="9 symlinked dir"),
    "symlink_to_other_repo": Case(
        symlink_to_other_repo, "outside the repository", vector="9 link into another repository"
    ),
}
"""Every case, by name."""


def slow_glob() -> tuple[list[str], list[str]]:
    """Vector 5 (not a `flujo validate` case): `specs:` globs that backtrack exponentially
    on a deep path when matched by a regex with nested quantifiers."""
    patterns = ["**/" * 30 + "x.yml"]
    paths = ["/".join(["a"] * 40) + "/y.yml"]
    return patterns, paths


def materialise(out: Path) -> dict[str, Path]:
    """Write every case under `out/<name>/`; return the path to check for each."""
    return {name: case.build(out / name) for name, case in HOSTILE.items()}
