"""The bake-in of a staged change: its candidate evaluated (`flujo eval`) on production
inputs captured after its pull request was opened, look after look, then judged.

A `BakeTally` adds up every look's evaluation (examples compared, agreed, failed runs by
cause of the baseline and of the candidate on the same examples). `judge()` says whether
the change may merge once the bake-in window has passed: at least `min_examples` fresh
examples compared, agreement at or above the floor, and no failure cause of kind model or
provider that the candidate has and the baseline did not have on the same inputs. Every
figure says from how many examples and how it was measured; "not measured" when none.
Pure: nothing is read or run here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from flujo.spec.stats import wilson

NEW_CAUSES = ("model", "provider")
"""Failure causes that, new in the candidate's evaluation, stop a bake-in."""


@dataclass(frozen=True)
class BakeTally:
    """Everything the looks of one bake-in measured so far."""

    started: float
    """When the pull request was opened: only inputs captured after it count."""
    ends: float
    """When the bake-in window has passed."""
    examples: int = 0
    agreed: int = 0
    mode: str = ""
    """How the evaluations reached their models (`live` through the evaluation provider)."""
    looks: int = 0
    newest: float | None = None
    """When the newest compared example was captured (the next look reads after it)."""
    failures_before: dict[str, int] = field(default_factory=dict)
    failures_after: dict[str, int] = field(default_factory=dict)
    disagreements: tuple[str, ...] = ()
    """Where the candidate disagreed (`run id: step`), the first few."""
    spent_usd: float = 0.0
    not_measured: str = ""
    """Why the last look could not measure (empty: it did, or no look yet)."""
    candidate: str = ""
    """SHA-256 of the candidate spec the looks evaluated (a new one starts over)."""

    @property
    def since(self) -> float:
        return self.newest if self.newest is not None else self.started

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.examples if self.examples else None

    def add(self, look: dict[str, Any]) -> BakeTally:
        """This tally with one more look (an `EvalReport.to_dict()` of fresh examples)."""
        examples = int(look.get("examples") or 0)
        failures = look.get("failures") or {}
        newest = look.get("newest")
        return replace(
            self,
            looks=self.looks + 1,
            examples=self.examples + examples,
            agreed=self.agreed + int(look.get("agreed") or 0),
            mode=str(look.get("mode") or self.mode) if examples else self.mode,
            newest=max(float(newest), self.newest or 0.0) if newest is not None else self.newest,
            failures_before=_added(self.failures_before, failures.get("before") or {}),
            failures_after=_added(self.failures_after, failures.get("after") or {}),
            disagreements=(
                *self.disagreements,
                *(f"{d['run_id']}: {d['step']}" for d in look.get("disagreements") or ()),
            )[:5],
            spent_usd=self.spent_usd + float(look.get("eval_cost_usd") or 0.0),
            not_measured="",
        )

    def new_causes(self) -> dict[str, int]:
        """Failure causes (model, provider) of the candidate the baseline did not have."""
        return {
            cause: n
            for cause, n in sorted(self.failures_after.items())
            if cause in NEW_CAUSES and not self.failures_before.get(cause)
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["disagreements"] = list(self.disagreements)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BakeTally:
        return cls(**{**data, "disagreements": tuple(data.get("disagreements") or ())})

    def figures(self, floor: float, min_examples: int) -> list[str]:
        """The Bake-in figures, each with how many examples and how it was measured."""
        if not self.examples:
            why = self.not_measured or "no production input was captured since it opened"
            return [
                f"Examples compared: 0 (not measured: {why}).",
                "Agreement: not measured (no fresh examples compared).",
            ]
        low, high = wilson(self.agreed, self.examples)
        rate = self.agreed / self.examples
        how = (
            f"`flujo eval` runs {self.mode} through the evaluation provider on production "
            f"inputs captured after the pull request was opened, {self.looks} look(s)"
        )
        causes = self.new_causes()
        return [
            f"Examples compared: {self.examples} ({how}; at least {min_examples} needed).",
            f"Agreement: {rate:.0%} ({self.agreed} of {self.examples} examples agreed on every "
            f"changed step; Wilson 95% interval {low:.0%}–{high:.0%}; floor {floor:.0%}).",
            "New failure causes in the candidate's runs: "
            + (
                ", ".join(
                    f"{cause} ({n} of {self.examples} runs; the baseline had none)"
                    for cause, n in causes.items()
                )
                if causes
                else "none (the candidate's model and provider failures compared with the "
                f"baseline's on the same {self.examples} inputs)"
            )
            + ".",
        ]


@dataclass(frozen=True)
class BakeVerdict:
    merge: bool
    reasons: tuple[str, ...]
    """Why not (empty when it may merge)."""


def judge(tally: BakeTally, floor: float, min_examples: int) -> BakeVerdict:
    """Whether a bake-in whose window has passed lets the change merge."""
    reasons: list[str] = []
    if tally.examples < min_examples:
        reasons.append(
            f"only {tally.examples} fresh example(s) compared, fewer than the "
            f"{min_examples} `auto_apply.min_examples` needs"
        )
    agreement = tally.agreement
    if agreement is not None and agreement < floor:
        reasons.append(
            f"agreement {agreement:.0%} ({tally.agreed} of {tally.examples}) is below the "
            f"floor of {floor:.0%}"
        )
    for cause, n in tally.new_causes().items():
        reasons.append(
            f"the candidate failed with cause {cause} on {n} of {tally.examples} examples, "
            "a cause the baseline did not have on them"
        )
    return BakeVerdict(not reasons, tuple(reasons))


def _added(total: dict[str, int], more: dict[str, Any]) -> dict[str, int]:
    out = dict(total)
    for cause, n in more.items():
        out[str(cause)] = out.get(str(cause), 0) + int(n)
    return out
