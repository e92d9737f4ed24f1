"""Captured examples: opt-in samples of a run's input and its steps' inputs and outputs.

A spec turns capture on with `telemetry: {capture: {rate: 0.05, max_bytes: 16384,
redact: [REGEX, ...], keep: 1000}}`; `FLUJO_CAPTURE_RATE` and `FLUJO_CAPTURE_MAX_BYTES`
override its rate and size cap (a rate from the environment turns capture on for a spec
that has no `capture:`). Every value is redacted before it leaves the process: keys that
name secrets (`api_key`, `token`, `password`, `authorization`, …) lose their values, and
text that looks like a key or token (`sk-…`, `Bearer …`, `ghp_…`, `AKIA…`, JWTs) is
replaced by `[REDACTED]`, as is every match of the spec's `redact` expressions. A value
longer than `max_bytes` (as JSON, UTF-8) is cut and marked truncated.

Captured examples are kept in the run store's `captures` table (one row per run and step,
plus the run's own input and output under the step name `""`), at most `keep` captured
runs per spec (oldest dropped first); `flujo runs prune` removes older ones. They are what
`flujo eval` replays.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flujo.engine.results import PipelineResult
    from flujo.engine.store import RunStore
    from flujo.spec.model import Pipeline

REDACTED = "[REDACTED]"
RUN = ""
"""Step name under which a run's own input and output are captured."""
SECRET_KEYS = re.compile(
    r"(api[_-]?key|secret|token|password|passwd|authorization|cookie|credential|private[_-]?key)",
    re.IGNORECASE,
)
"""Keys whose values are always redacted."""
SECRET_TEXT = (
    r"(?i:sk)-[A-Za-z0-9_-]{16,}",
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
    r"gh[pousr]_[A-Za-z0-9]{20,}",
    r"github_pat_[A-Za-z0-9_]{20,}",
    r"AKIA[0-9A-Z]{16}",
    r"xox[abpr]-[A-Za-z0-9-]{10,}",
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
)
"""Text that looks like a key or token: always redacted."""
_ALWAYS = re.compile("|".join(SECRET_TEXT))


@dataclass(frozen=True)
class CaptureSettings:
    """The capture settings in force for a spec (after the environment's overrides)."""

    rate: float = 0.0
    max_bytes: int = 16384
    redact: tuple[str, ...] = ()
    keep: int = 1000

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @classmethod
    def for_pipeline(
        cls, pipeline: Pipeline, environ: dict[str, str] | None = None
    ) -> CaptureSettings:
        env = os.environ if environ is None else environ
        spec = pipeline.telemetry.capture if pipeline.telemetry is not None else None
        settings = (
            cls(spec.rate, spec.max_bytes, tuple(spec.redact), spec.keep)
            if spec is not None
            else cls()
        )
        rate, size = env.get("FLUJO_CAPTURE_RATE"), env.get("FLUJO_CAPTURE_MAX_BYTES")
        try:
            if rate:
                settings = _replace(settings, rate=min(max(float(rate), 0.0), 1.0))
            if size:
                settings = _replace(settings, max_bytes=max(int(size), 64))
        except ValueError:
            pass  # a malformed override leaves the spec's settings
        return settings

    def sampled(self) -> bool:
        return self.enabled and random.random() < self.rate


def _replace(settings: CaptureSettings, **changes: Any) -> CaptureSettings:
    from dataclasses import replace

    return replace(settings, **changes)


class Redactor:
    """Redacts secrets (always) and the spec's patterns from values."""

    def __init__(self, patterns: tuple[str, ...] = ()) -> None:
        extra = [re.compile(p) for p in patterns]
        self.patterns = [_ALWAYS, *extra]

    def text(self, value: str) -> str:
        for pattern in self.patterns:
            value = pattern.sub(REDACTED, value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: (REDACTED if SECRET_KEYS.search(str(k)) else self.value(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.text(str(value))


def encode(value: Any, redactor: Redactor, max_bytes: int) -> tuple[str, bool]:
    """The redacted value as JSON, cut to `max_bytes` (then a JSON string of the cut text)."""
    text = json.dumps(redactor.value(value), ensure_ascii=False, default=str)
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    cut = data[: max(max_bytes - 16, 0)].decode("utf-8", "ignore")
    return json.dumps(cut + "…", ensure_ascii=False), True


CAPTURE_EVENT = "flujo.capture"
"""Span event (on a run's root span) carrying one captured example over OTLP."""


def capture_events(rows: list[tuple[Any, ...]], keep: int) -> list[tuple[str, dict[str, Any]]]:
    """The captured rows of a run as span events, to send with its telemetry."""
    return [
        (
            CAPTURE_EVENT,
            {
                "flujo.capture.step": step,
                "flujo.capture.input": given,
                "flujo.capture.output": produced,
                "flujo.capture.truncated": bool(cut),
                "flujo.capture.keep": keep,
                "flujo.spec.path": path or "",
            },
        )
        for _, step, _, path, given, produced, cut, _ in rows
    ]


def rows_from_events(
    run_id: str, spec_sha256: str, events: list[tuple[str, int, dict[str, Any]]]
) -> tuple[list[tuple[Any, ...]], str | None, int]:
    """Captured rows sent as span events (OTLP), held to the same limits as at run time:
    secrets redacted again, values over the default size cap cut, `keep` at most the
    default. Returns (rows, spec path, keep)."""
    redactor = Redactor()
    limit = CaptureSettings().max_bytes
    rows, path, keep = [], None, CaptureSettings().keep
    now = time.time()
    for name, _, attrs in events:
        if name != CAPTURE_EVENT:
            continue
        path = str(attrs.get("flujo.spec.path") or "") or None
        keep = min(int(attrs.get("flujo.capture.keep") or keep), CaptureSettings().keep)
        texts = []
        cut = bool(attrs.get("flujo.capture.truncated"))
        for key in ("flujo.capture.input", "flujo.capture.output"):
            try:
                value = json.loads(str(attrs.get(key, "null")))
            except ValueError:
                value = str(attrs.get(key))
            text, clipped = encode(value, redactor, limit)
            texts.append(text)
            cut = cut or clipped
        step = str(attrs.get("flujo.capture.step") or "")
        rows.append((run_id, step, spec_sha256, path, texts[0], texts[1], int(cut), now))
    return rows, path, keep


def capture_rows(
    result: PipelineResult,
    step_inputs: dict[str, Any],
    settings: CaptureSettings,
    spec_path: str | None,
) -> list[tuple[Any, ...]]:
    """Rows of the captures table for a finished run: its input and output, and each step
    that succeeded with its input (as the step received it) and output."""
    redactor = Redactor(settings.redact)
    now = time.time()
    rows = []
    pairs = [(RUN, result.input, result.output if result.status == "succeeded" else None)]
    for name, record in result.steps.items():
        if record.success and name in step_inputs:
            pairs.append((name, step_inputs[name], record.output))
    for name, given, produced in pairs:
        text_in, cut_in = encode(given, redactor, settings.max_bytes)
        text_out, cut_out = encode(produced, redactor, settings.max_bytes)
        rows.append(
            (
                result.run_id,
                name,
                result.spec_sha256,
                spec_path,
                text_in,
                text_out,
                int(cut_in or cut_out),
                now,
            )
        )
    return rows


def write_captures(
    store: RunStore, rows: list[tuple[Any, ...]], spec_path: str | None, keep: int
) -> None:
    store.execute(
        "INSERT INTO captures VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step_name)"
        " DO UPDATE SET spec_sha256 = excluded.spec_sha256, spec_path = excluded.spec_path,"
        " input = excluded.input, output = excluded.output, truncated = excluded.truncated,"
        " created_at = excluded.created_at",
        rows,
    )
    if spec_path is not None:
        store.execute(
            "DELETE FROM captures WHERE spec_path = ? AND run_id NOT IN (SELECT run_id FROM "
            "captures WHERE spec_path = ? AND step_name = '' ORDER BY created_at DESC LIMIT ?)",
            [(spec_path, spec_path, keep)],
        )


def captures_of_run(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT step_name, input, output, truncated FROM captures WHERE run_id = ? "
        "ORDER BY created_at, step_name",
        (run_id,),
    )
    return [
        {
            "step": row["step_name"] or None,
            "input": json.loads(row["input"]) if row["input"] is not None else None,
            "output": json.loads(row["output"]) if row["output"] is not None else None,
            "truncated": bool(row["truncated"]),
        }
        for row in rows
    ]


def prune(store: RunStore, *, older_than_s: float | None = None, keep: int | None = None) -> int:
    """Drop captured runs older than `older_than_s` seconds and beyond the newest `keep`
    per spec; returns how many captured runs were dropped."""
    before = store.query("SELECT COUNT(*) AS n FROM captures WHERE step_name = ''", ())[0]["n"]
    if older_than_s is not None:
        store.execute("DELETE FROM captures WHERE created_at < ?", [(time.time() - older_than_s,)])
    if keep is not None:
        paths = store.query("SELECT DISTINCT spec_path FROM captures", ())
        for row in paths:
            store.execute(
                "DELETE FROM captures WHERE spec_path IS NOT DISTINCT FROM ? AND run_id NOT IN ("
                "SELECT run_id FROM captures WHERE spec_path IS NOT DISTINCT FROM ?"
                " AND step_name = '' ORDER BY created_at DESC LIMIT ?)",
                [(row["spec_path"], row["spec_path"], keep)],
            )
    after = store.query("SELECT COUNT(*) AS n FROM captures WHERE step_name = ''", ())[0]["n"]
    return int(before) - int(after)
