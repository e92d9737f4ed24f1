"""How much of a YAML file survives an edit: plain ruamel round trip vs `apply_patch`.

Run from the repository root:

    .venv/bin/python benchmarks/patch_corpus.py

For every file of tests/corpus (one YAML style each):

* ruamel round trip: load and dump with `YAML(typ="rt")`, `preserve_quotes=True`,
  `width=4096`, with the best of three indentation settings for that file: (mapping,
  sequence, offset) = (2, 2, 0), (2, 4, 2), and what `ruamel.yaml.util.
  load_yaml_guess_indent` guesses. "lines changed" counts the original lines the best
  setting deletes or rewrites; the file counts as changed unless the bytes are equal.
* apply_patch: every per-file patch of tests/spec/test_patch_corpus.py (replace a deep
  scalar, add a key to a step, insert/append/remove/move a step, add a key to a flow
  mapping), one at a time. A patch counts as local when every line outside the patched
  node is byte-identical (line endings included) and the result is `exact`.
"""

from __future__ import annotations

import difflib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ruamel.yaml import YAML  # noqa: E402
from ruamel.yaml.util import load_yaml_guess_indent  # noqa: E402

from flujo.spec.edit import patch_text  # noqa: E402
from tests.spec.test_patch_corpus import CASES, FILES, RAW, TEXTS, diff  # noqa: E402


def round_trip(text: str, mapping: int, sequence: int, offset: int) -> str:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    stream = io.StringIO()
    yaml.dump(yaml.load(text), stream)
    return stream.getvalue()


def changed_lines(before: str, after: str) -> int:
    matcher = difflib.SequenceMatcher(a=before.split("\n"), b=after.split("\n"), autojunk=False)
    return sum(
        max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    )


def best_round_trip(raw: str) -> tuple[str, int, bool]:
    """(setting, lines changed, byte-identical) of the best of the three settings."""
    _, indent, block_seq_indent = load_yaml_guess_indent(raw)
    guessed = (indent or 2, (indent or 2), block_seq_indent or 0)
    settings = {"(2,2,0)": (2, 2, 0), "(2,4,2)": (2, 4, 2), f"guess{guessed}": guessed}
    results = []
    for label, (mapping, sequence, offset) in settings.items():
        try:
            out = round_trip(raw, mapping, max(sequence, offset + 2), offset)
        except Exception as exc:  # a setting ruamel cannot write
            results.append((10**9, label, False, str(exc)))
            continue
        # ruamel writes LF: compare bytes as they would be written (CRLF counts)
        results.append((changed_lines(raw, out), label, out == raw, ""))
    changed, label, same, _ = min(results)
    return label, changed, same


def patch_is_local(name: str, op: str) -> bool:
    case = CASES[name, op]
    result = patch_text(RAW[name], [case.operation])
    crlf = "\r\n" in RAW[name]
    if crlf and "\n" in result.text.replace("\r\n", ""):
        return False
    changes = diff(TEXTS[name], result.text.replace("\r\n", "\n") if crlf else result.text)
    lo, hi = case.changed_within or (0, -1)
    allowed = set(range(lo, hi + 1))
    return (
        result.exact and changes.changed <= allowed and changes.inserted_at <= case.inserted_before
    )


def main() -> None:
    rows = []
    for path in FILES:
        name = path.name
        label, changed, same = best_round_trip(RAW[name])
        ops = [op for (file, op) in CASES if file == name]
        local = sum(patch_is_local(name, op) for op in ops)
        rows.append((name, label, changed, same, local, len(ops)))

    header = ("file", "rt best setting", "rt lines changed", "rt identical", "patches local")
    widths = [max(len(header[0]), *(len(r[0]) for r in rows)), 20, 16, 12, 13]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for name, label, changed, same, local, total in rows:
        cells = (name, label, str(changed), "yes" if same else "no", f"{local}/{total}")
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    files = len(rows)
    rt_changed = sum(not r[3] for r in rows)
    all_local = sum(r[4] == r[5] for r in rows)
    patches = sum(r[5] for r in rows)
    local = sum(r[4] for r in rows)
    print()
    print(f"plain ruamel round trip changes {rt_changed} of {files} files byte-for-byte")
    print(
        f"apply_patch leaves {all_local} of {files} files byte-identical outside the patched "
        f"lines for every patch ({local} of {patches} patches)"
    )


if __name__ == "__main__":
    main()
