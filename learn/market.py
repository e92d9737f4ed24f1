"""A repository's own runs of each skill: the figures that replace (or refine) the
characterisation baseline once there are enough of them (`spec/skill_figures.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flujo.spec.skill_figures import Figures, figures_of

if TYPE_CHECKING:
    from flujo.engine.store import RunStore


def observed(store: RunStore) -> dict[str, Figures]:
    """Figures per skill from a store's live runs (not tests, checks or evaluations):
    every attempt of a step whose `uses:` names the skill, in the spec version that ran;
    attempts that failed for reasons of the harness or the input are not evidence."""
    from flujo.learn.telemetry_view import (
        MOCKED,
        NOT_EVIDENCE_CAUSES,
        cause_of,
        evidence_filter,
        spec_document,
        value_at,
    )

    modes, excluded = evidence_filter(())
    rows = store.query(
        "SELECT r.spec_sha256 AS sha, s.yaml_path, s.status, s.cost_usd, s.start_ns,"
        " s.end_ns, s.error, s.cause, s.attributes FROM spans s JOIN runs r ON r.run_id = s.run_id"
        f" WHERE r.mode IN ({', '.join('?' * len(modes))})"
        f" AND r.origin NOT IN ({', '.join('?' * len(excluded))})"
        " AND s.step_name IS NOT NULL AND s.yaml_path IS NOT NULL AND instr(s.attributes, ?) = 0",
        (*modes, *excluded, MOCKED),
    )
    documents: dict[str, Any] = {}
    outcomes: dict[str, list[tuple[bool, float | None, float]]] = {}
    for row in rows:
        sha = row["sha"]
        if sha not in documents:
            documents[sha] = spec_document(store.spec_text(sha))
        uses = value_at(documents[sha], f"{row['yaml_path']}.uses")
        if not isinstance(uses, str) or uses.startswith("agents."):
            continue
        ok = row["status"] == "OK"
        if not ok and cause_of(row) in NOT_EVIDENCE_CAUSES:
            continue
        seconds = ((row["end_ns"] or row["start_ns"]) - row["start_ns"]) / 1e9
        outcomes.setdefault(uses, []).append((ok, row["cost_usd"], seconds))
    return {name: figures_of(found, "live") for name, found in outcomes.items()}
