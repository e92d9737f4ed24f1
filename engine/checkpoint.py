"""Checkpoints of runs, and what resuming one needs: the state after each top-level step.

With a run store, a run keeps a checkpoint when it starts (index -1: its input and first
context) and after each completed top-level step (its index, yaml_path, output, the run
context, the results of the steps it ran and the cost so far; a resume adds up the step
results of every checkpoint). Checkpoints are written while the next step runs (as
LangGraph's `durability="async"`), several in one transaction when steps end faster than
the store commits: the run never waits for the disk, and a process killed before a
checkpoint was committed resumes from the one before (its steps run again).

A run that stopped (killed, cancelled, failed, or paused at a `hitl` step nobody could
answer) is resumed from its last checkpoint by a new run that records `resumed_from`: the
steps after the checkpoint run with the same context and step outputs they would have
seen. A changed spec is never
applied to a run in flight: resuming one whose spec changed since is refused. Checkpoints
of a run that succeeded are dropped (there is nothing to resume).

Values are kept as JSON: a step output JSON cannot hold (an object of a class) is not
checkpointed, and a resume starts from the checkpoint before it.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
from concurrent.futures import Future
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
    """The results of every step so far (of the steps this checkpoint's step ran, in a
    row: a resume adds them up)."""
    cost_usd: float = 0.0
    cost_known: bool = True
    tokens: int = 0
    owner: str = ""

    def step_results(self) -> StepResults:
        """The step results the checkpoint holds (outputs included)."""
        results = StepResults()
        for name, fields in self.steps.items():
            results[name] = StepResult(**fields)
        return results

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Checkpoint:
        """The state after the last of a run's checkpoint rows (first to last)."""
        steps: dict[str, dict[str, Any]] = {}
        run_input: Any = None
        for row in rows:
            state = json.loads(row["state"])
            steps.update(state["steps"])
            if row["step_index"] == START:
                run_input = state.get("input")
        last = rows[-1]
        state = json.loads(last["state"])
        return cls(
            run_id=last["run_id"],
            step_index=int(last["step_index"]),
            yaml_path=last["yaml_path"],
            step_name=last["step_name"],
            input=run_input,
            output=json.loads(last["output"]),
            context=json.loads(last["context"]),
            steps=steps,
            cost_usd=float(state["cost_usd"]),
            cost_known=bool(state["cost_known"]),
            tokens=int(state["tokens"]),
            owner=last["owner"],
        )


def row(
    run_id: str,
    step_index: int,
    where: tuple[str, str],
    output: Any,
    context: dict[str, Any],
    state: dict[str, Any],
) -> dict[str, Any]:
    """A checkpoints row (JSON text) taken now; raises NotCheckpointable. `where`: the
    step's yaml_path and name; `state`: the step results it ran, the totals, and at
    START the run's input."""
    output_text = dumps(output)
    for fields in state["steps"].values():  # other values in the state are the engine's
        if fields["output"] is not output:
            dumps(fields["output"])
    return {
        "run_id": run_id,
        "step_index": step_index,
        "yaml_path": where[0],
        "step_name": where[1],
        "output": output_text,
        "context": dumps(context),
        "state": dumps(state) if step_index == START else _ENCODER.encode(state),
        "owner": _OWNER,
    }


def coalesce(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows to write for a batch: of each run's consecutive step rows, the last one,
    holding the step results of them all (only the latest state is resumed from; a JSON
    object with a key twice reads as its last value, so the results are joined as text).
    Start rows are kept as they are."""
    out: list[dict[str, Any]] = []
    for row in rows:
        last = out[-1] if out else None
        same = last is not None and last["run_id"] == row["run_id"]
        if not same or last is None or row["step_index"] == START or last["step_index"] == START:
            out.append(row)
            continue
        out[-1] = row | {"state": _join_steps(last["state"], row["state"])}
    return out


def _join_steps(earlier: str, later: str) -> str:
    """`later` (a state's JSON text, `steps` its last key) with the step results of
    `earlier` before its own."""
    head, marker, steps = later.partition(_STEPS)
    _, found, old = earlier.partition(_STEPS)
    if not marker or not found:  # pragma: no cover - every step row has them
        return later
    joined = ",".join(part for part in (old[1:-2], steps[1:-2]) if part)
    return f"{head}{marker}{{{joined}}}}}"


_STEPS = '"steps":'
"""The last key of a step row's state (the keys before it hold numbers and booleans)."""


def step_fields(record: StepResult) -> dict[str, Any]:
    """A step result as a checkpoint keeps it."""
    return {name: getattr(record, name) for name in StepResult.__slots__}


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """`value` as JSON text that loads back equal; NotCheckpointable when it cannot."""
    if value is None or type(value) in (str, bool, int):
        return _ENCODER.encode(value)
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise NotCheckpointable(str(exc)) from None
    if isinstance(value, dict | list) and json.loads(text) != value:
        raise NotCheckpointable("it does not read back the same as JSON (tuples, int keys)")
    return text


def owner() -> str:
    """This process, as a checkpoint names the process running the run: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


_OWNER = owner()


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
    rows = store.checkpoints(run_id)
    if not rows or rows[0]["step_index"] != START:
        raise ResumeRefused(
            f"run {run_id} has no checkpoint (it ran without a run store, before this Flujo "
            "kept them, or they were pruned by `flujo runs prune`): start a new run"
        )
    checkpoint = Checkpoint.from_rows(rows)
    if status == "running":
        alive = _alive_here(checkpoint.owner)
        if alive:
            raise ResumeRefused(f"run {run_id} is still running (process {checkpoint.owner})")
        if alive is None and not force:
            raise ResumeRefused(
                f"run {run_id} is marked running by {checkpoint.owner}, another host: if "
                "that process is gone, resume it with --force"
            )
    return run, checkpoint


class CheckpointWriter:
    """Writes checkpoint rows on a thread of its own, in order, all the rows that came
    while the previous transaction ran in one: taking a checkpoint costs the run a queue
    put, and a step that blocks the event loop (a synchronous skill) does not hold its
    predecessor's checkpoint back. The thread ends when idle and starts again on demand."""

    IDLE_S = 0.5

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[dict[str, Any] | Future[str | None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failed: dict[str, str] = {}

    def put(self, row: dict[str, Any]) -> None:
        self._queue.put(row)
        self._ensure_thread()

    def flush(self, run_id: str) -> Future[str | None]:
        """Done when every row put before is written; its result: why a write of
        `run_id`'s rows failed (None when none did)."""
        done: Future[str | None] = Future()
        done.run_id = run_id  # type: ignore[attr-defined]
        self._queue.put(done)
        self._ensure_thread()
        return done

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="flujo-checkpoints", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                items = [self._queue.get(timeout=self.IDLE_S)]
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [item for item in items if isinstance(item, dict)]
            if rows:
                try:
                    self.store.write_checkpoints(coalesce(rows))
                except Exception as exc:  # the store went away: the run says so at its end
                    for row in rows:
                        self._failed.setdefault(row["run_id"], f"{type(exc).__name__}: {exc}")
            for item in items:
                if isinstance(item, Future):
                    item.set_result(self._failed.pop(item.run_id, None))  # type: ignore[attr-defined]
