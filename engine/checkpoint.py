"""Checkpoints of runs, and what resuming one needs: the state after each top-level step.

With a run store, a run keeps a checkpoint when it starts (index -1: its input and first
context) and after each completed top-level step (its index, yaml_path, output, the run
context, the step results so far and the cost so far). A run that stopped (killed,
cancelled, failed, or paused at a `hitl` step nobody could answer) is resumed from its
last checkpoint by a new run that records `resumed_from`: the steps after the checkpoint
run with the same context and step outputs they would have seen. A changed spec is never
applied to a run in flight: resuming one whose spec changed since is refused. Checkpoints
of a run that succeeded are dropped (there is nothing to resume).

Values are kept as JSON: a step output JSON cannot hold (an object of a class) is not
checkpointed, and a resume starts from the checkpoint before it.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flujo.engine.results import StepResult, StepResults
from flujo.spec.errors import EXIT_INVALID, EXIT_USAGE, FlujoError

if TYPE_CHECKING:
    from flujo.engine.store import RunStore
    from flujo.spec.model import Pipeline

START = -1
"""The index of the checkpoint a run keeps when it starts."""
RESUMABLE = ("running", "failed", "cancelled", "paused")
"""Statuses of runs that can be resumed (`running`: only when its process is gone)."""


class ResumeRefused(FlujoError):
    """A run cannot be resumed (it succeeded, its spec changed, it is still running, it
    was resumed already): exit code 1."""

    exit_code = EXIT_INVALID


class NoSuchRun(FlujoError):
    """No run (or no single run) matches the id given: exit code 2."""

    exit_code = EXIT_USAGE


class NotCheckpointable(FlujoError):
    """A value JSON cannot hold as it is (never surfaces: that checkpoint is skipped, and
    the span says so; exit code 1 if it ever did)."""

    exit_code = EXIT_INVALID


@dataclass
class Checkpoint:
    """The state of a run after its top-level step `step_index` (START: before any)."""

    run_id: str
    step_index: int
    yaml_path: str
    step_name: str
    input: Any
    output: Any
    context: dict[str, Any]
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost_usd: float = 0.0
    cost_known: bool = True
    tokens: int = 0

    def step_results(self) -> StepResults:
        """The step results the checkpoint holds (outputs included)."""
        results = StepResults()
        for name, fields in self.steps.items():
            results[name] = StepResult(**fields)
        return results

    def row(self) -> dict[str, Any]:
        """The checkpoints row (JSON text); raises NotCheckpointable."""
        state = {
            "input": self.input,
            "steps": self.steps,
            "cost_usd": self.cost_usd,
            "cost_known": self.cost_known,
            "tokens": self.tokens,
        }
        return {
            "yaml_path": self.yaml_path,
            "step_name": self.step_name,
            "output": dumps(self.output),
            "context": dumps(self.context),
            "state": dumps(state),
            "owner": owner(),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Checkpoint:
        state = json.loads(row["state"])
        return cls(
            run_id=row["run_id"],
            step_index=int(row["step_index"]),
            yaml_path=row["yaml_path"],
            step_name=row["step_name"],
            input=state["input"],
            output=json.loads(row["output"]),
            context=json.loads(row["context"]),
            steps=state["steps"],
            cost_usd=float(state["cost_usd"]),
            cost_known=bool(state["cost_known"]),
            tokens=int(state["tokens"]),
        )


def step_fields(record: StepResult) -> dict[str, Any]:
    """A step result as a checkpoint keeps it."""
    return {name: getattr(record, name) for name in StepResult.__slots__}


def dumps(value: Any) -> str:
    """`value` as JSON text that loads back equal; NotCheckpointable when it cannot."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise NotCheckpointable(str(exc)) from None
    if json.loads(text) != value:
        raise NotCheckpointable("it does not read back the same as JSON (tuples, int keys)")
    return text


def owner() -> str:
    """This process, as a checkpoint names the process running the run: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive_here(owner_text: str) -> bool | None:
    """Whether the process `owner_text` names is alive (None: it runs on another host)."""
    host, _, pid_text = owner_text.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process with that pid
        return True
    return True


def resume_point(
    store: RunStore, run_id: str, pipeline: Pipeline, *, force: bool = False
) -> tuple[dict[str, Any], Checkpoint]:
    """The run `run_id` (or a unique prefix) and its last checkpoint, when `pipeline` may
    resume it; ResumeRefused or NoSuchRun saying why not. `force`: resume a run marked
    running on another host (whose process cannot be checked from here)."""
    found = store.find_runs(run_id, limit=2)
    if not found:
        raise NoSuchRun(f"no run matches '{run_id}' in the run store")
    if len(found) > 1:
        raise NoSuchRun(f"'{run_id}' matches several runs; give more of the id")
    run = found[0]
    run_id = run["run_id"]
    status = run["status"]
    if status not in RESUMABLE:
        raise ResumeRefused(f"run {run_id} {status}: there is nothing to resume")
    later = store.resumed_as(run_id)
    if later is not None:
        raise ResumeRefused(f"run {run_id} was resumed already, as {later}: resume that one")
    if pipeline.spec_sha256 != run["spec_sha256"]:
        raise ResumeRefused(
            f"the spec changed since run {run_id} started (sha256 {run['spec_sha256'][:12]}… "
            f"then, {pipeline.spec_sha256[:12]}… now): a changed spec applies on the next "
            "run, never to one in flight; start a new run (or restore the spec to resume)"
        )
    row = store.last_checkpoint(run_id)
    if row is None:
        raise ResumeRefused(
            f"run {run_id} has no checkpoint (it ran without one, or it succeeded): start a new run"
        )
    if status == "running":
        alive = _alive_here(row["owner"])
        if alive:
            raise ResumeRefused(f"run {run_id} is still running (process {row['owner']})")
        if alive is None and not force:
            raise ResumeRefused(
                f"run {run_id} is marked running by {row['owner']}, another host: if that "
                "process is gone, resume it with --force"
            )
    return run, Checkpoint.from_row(row)
