"""Suggestions of one kind in one spec as one change (`pull_requests.group: kind`).

The members' patches are applied one after another and the result is verified as a whole
(the spec's embedded tests on the combined text); a member whose patch no longer applies,
or a group whose combination breaks a test, stays a suggestion of its own. The group's
id names the spec and kind (`suggestion_id(spec, kind, "*")`), so a later cycle updates
its pull request instead of opening another; its estimate is the members' summed, its
risk the highest of theirs, its quality evidence each member's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.learn.suggestion_log import suggestion_id

if TYPE_CHECKING:
    from flujo.learn.roi import Estimate
    from flujo.learn.suggest import Suggestion

GROUP_PLACE = "*"
_RISK_ORDER = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class Grouped:
    """A suggestion (perhaps a group) with the spec's text once it is applied."""

    suggestion: Suggestion
    after: str
    members: tuple[str, ...] = ()
    """The grouped suggestions' ids (empty for a single suggestion)."""


async def group_by_kind(
    spec: Path, before: str, suggestions: list[Suggestion], registry: Any
) -> list[Grouped]:
    """`suggestions` of the spec at `spec` (text `before`), those of one kind combined; in
    the order of each group's best member."""
    from flujo.spec.edit import PatchError, apply_patch

    kinds: dict[str, list[Suggestion]] = {}
    for suggestion in suggestions:
        kinds.setdefault(suggestion.kind, []).append(suggestion)
    out: list[Grouped] = []
    for members in kinds.values():
        singles = [Grouped(s, apply_patch(before, s.patch, file=s.spec)) for s in members]
        if len(members) < 2:
            out += singles
            continue
        text, joined, left_out = before, [], []
        for member in members:
            try:
                text = apply_patch(text, member.patch, file=member.spec)
            except PatchError:  # it no longer applies after the others: it stays on its own
                left_out.append(member)
                continue
            joined.append(member)
        if len(joined) < 2:
            out += singles
            continue
        combined = await _combined(spec, before, text, joined, registry)
        if combined is None:
            out += singles
            continue
        out.append(Grouped(combined, text, tuple(m.id for m in joined)))
        out += [g for g in singles if g.suggestion in left_out]
    return out


async def _combined(
    spec: Path, before: str, after: str, members: list[Suggestion], registry: Any
) -> Suggestion | None:
    """The group as one suggestion, verified on the combined text (None: it breaks a test)."""
    from flujo.learn.suggest import _diff, verify_patched

    verification = await verify_patched(spec, after, registry)
    if not verification.validated or verification.broken:
        return None
    lead = members[0]
    kind = lead.kind.replace("_", " ")
    risk = max((m.risk for m in members), key=_rank)
    estimate = _summed([m.estimate for m in members])
    headline = f"{len(members)} × {kind} together: {_together(estimate)}"
    why = "; ".join(f"`{m.yaml_path}`: {m.why}" for m in members)
    return replace(
        lead,
        id=suggestion_id(lead.spec, lead.kind, GROUP_PLACE),
        headline=headline,
        why=f"{len(members)} suggestions of one kind, grouped (`pull_requests.group: kind`): "
        + why,
        risk=risk,
        estimate=estimate,
        patch=[op for m in members for op in m.patch],
        diff=_diff(before, after, lead.spec),
        verification=verification,
        quality_evidence=_quality(members),
        roles=tuple(r for m in members for r in m.roles),
        watch_for="; ".join(dict.fromkeys(m.watch_for for m in members if m.watch_for)),
    )


def _together(estimate: Estimate) -> str:
    """What the members promise together, from their summed estimate."""
    from flujo.spec.figures import money

    parts = []
    if estimate.failures_avoided_per_month > 0:
        parts.append(f"avoid ~{estimate.failures_avoided_per_month:.0f} failed runs/month")
    if estimate.usd_per_month > 0:
        parts.append(f"save ~{money(estimate.usd_per_month)}/month")
    elif estimate.usd_per_month < 0:
        parts.append(f"cost ~{money(-estimate.usd_per_month)}/month more")
    if estimate.latency_s_per_run < 0:
        parts.append(f"~{-estimate.latency_s_per_run:.2f} s faster per run")
    return ", ".join(parts) or "see each change below"


def _rank(risk: str) -> int:
    return _RISK_ORDER.index(risk) if risk in _RISK_ORDER else len(_RISK_ORDER)


def _summed(estimates: list[Estimate]) -> Estimate:
    """The members' estimates added up; confidence the lowest of theirs."""
    lowest = min(estimates, key=lambda e: e.confidence)
    return replace(
        lowest,
        usd_per_run=sum(e.usd_per_run for e in estimates),
        usd_per_month=sum(e.usd_per_month for e in estimates),
        latency_s_per_run=sum(e.latency_s_per_run for e in estimates),
        failures_avoided_per_month=sum(e.failures_avoided_per_month for e in estimates),
        value_per_month=sum(e.value_per_month for e in estimates),
        score=sum(e.score for e in estimates),
        headline="; ".join(e.headline for e in estimates),
        risk=max((e.risk for e in estimates), key=_rank),
    )


def _quality(members: list[Suggestion]) -> dict[str, Any]:
    """Each member's quality evidence, in one sentence; measured only if all were."""
    needed = [m for m in members if m.quality_evidence.get("needed")]
    if not needed:
        return dict(members[0].quality_evidence)
    agreements = [m.quality_evidence.get("agreement") for m in needed]
    measured = all(m.quality_evidence.get("measured") for m in needed)
    summary = "; ".join(
        f"`{m.yaml_path}`: {m.quality_evidence.get('summary', 'not measured')}" for m in needed
    )
    found: dict[str, Any] = {"needed": True, "measured": measured, "summary": summary}
    if measured and all(isinstance(a, int | float) for a in agreements):
        found["agreement"] = min(agreements)  # type: ignore[type-var]
        found["examples"] = min(int(m.quality_evidence.get("examples") or 0) for m in needed)
    return found
