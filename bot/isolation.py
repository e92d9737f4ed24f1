"""Work on a repository's content runs in a child process with hard limits.

Specs are untrusted input: parsing, validating, testing and judging them happens in a
process forked from a warm fork server (started with a clean environment, so no secret
is ever inherited), limited in address space, CPU time, open files, file size, wall time
and output size, with no network and a scratch folder it may not write outside of (see
`flujo.bot.isolated`). The bot's event loop only waits on that process; an overrun kills
it and becomes `LimitExceeded`, a crash `IsolationFailed`, both with a reason a check
can show. Forking from the warm server costs a few milliseconds per task.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from flujo.bot.bake_cycle import BakeLook, BakeRequest
from flujo.bot.commit_report import CommitReport, Override, SpecReport
from flujo.bot.evaluate import (
    TEST_TIME_LIMIT_S,
    Plan,
    spec_paths,
    unread_config,
    wanted_files,
)
from flujo.bot.suggestion_codec import Cycle
from flujo.bot.suggestion_cycle import CycleRequest
from flujo.spec.config import RepoConfig
from flujo.spec.errors import Diagnostic, FlujoError

_T = TypeVar("_T")

# Environment variables a child may see; everything else (tokens, keys, secrets) stays out.
SAFE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONHASHSEED")
# A spec that reads other files says so with one of these words (`snapshot.references`).
REFERENCE_WORDS = (b"imports", b"from_file")
# Exit codes the child uses to say which limit it hit (see flujo.bot.isolated).
EXIT_MEMORY = 86


class IsolationLimits(BaseModel):
    """What one isolated task may use; every figure is a setting (`FLUJO_BOT_ISOLATION_*`)."""

    model_config = ConfigDict(frozen=True)

    memory_mb: int = Field(2048, ge=256, description="Address space of the child, MiB.")
    cpu_s: int = Field(300, ge=1, description="CPU seconds of the child.")
    wall_s: float = Field(600.0, gt=0, description="Seconds until the child is killed.")
    open_files: int = Field(256, ge=32, description="Open file descriptors.")
    file_mb: int = Field(64, ge=1, description="Largest file the child may write, MiB.")
    output_mb: int = Field(32, ge=1, description="Largest result the child may return, MiB.")
    commit_s: float = Field(
        900.0, gt=0, description="Seconds all the specs of one commit may take together."
    )

    def describe(self) -> str:
        return (
            f"{self.memory_mb} MiB of memory, {self.cpu_s} s of CPU, {self.wall_s:g} s in "
            f"all, {self.open_files} open files, {self.output_mb} MiB of output"
        )


class IsolationFailed(FlujoError):
    """The child could not finish its task (it crashed or reported an error).

    `partial` is the last progress the task reported before it stopped, if any.
    """

    def __init__(self, reason: str, partial: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


class LimitExceeded(IsolationFailed):
    """The child was stopped because it went over one of its limits."""


@dataclass(frozen=True, slots=True)
class Confinement:
    """What the child applies to itself before it reads any untrusted byte."""

    memory_bytes: int
    cpu_s: int
    open_files: int
    file_bytes: int
    scratch: str
    allowed_hosts: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    """Files (and their folders) outside the scratch folder the child may write."""


_lock = threading.Lock()
_start_lock = threading.Lock()
_context: Any = None


def _fork_server() -> Any:
    """The multiprocessing context whose fork server children start from (started once,
    with a clean environment and the checking modules already imported)."""
    global _context
    with _lock:
        if _context is None:
            from multiprocessing import forkserver

            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["flujo.bot.isolated"])
            saved = dict(os.environ)
            try:  # the server inherits this process's environment when it starts
                for name in list(os.environ):
                    if name not in SAFE_ENVIRONMENT:
                        del os.environ[name]
                forkserver.ensure_running()
            finally:
                os.environ.update(saved)
            _context = context
        return _context


async def run_isolated(
    task: str,
    payload: dict[str, Any],
    *,
    scratch: Path,
    limits: IsolationLimits | None = None,
    allowed_hosts: tuple[str, ...] = (),
    writable: tuple[str, ...] = (),
) -> Any:
    """Run `task` of `flujo.bot.isolated.TASKS` on `payload` in a confined child.

    `scratch` is the only folder the child may write to (its working directory), besides
    the files named in `writable`; it may connect only to `allowed_hosts` (addresses). Returns
    the task's JSON result; raises `LimitExceeded` or `IsolationFailed` with the reason.
    """
    limits = limits or IsolationLimits()
    confinement = Confinement(
        memory_bytes=limits.memory_mb * 1024 * 1024,
        cpu_s=limits.cpu_s,
        open_files=limits.open_files,
        file_bytes=limits.file_mb * 1024 * 1024,
        scratch=str(scratch),
        allowed_hosts=allowed_hosts,
        writable=writable,
    )
    return await asyncio.to_thread(_run, task, payload, confinement, limits)


def _run(
    task: str, payload: dict[str, Any], confinement: Confinement, limits: IsolationLimits
) -> Any:
    import json

    context = _fork_server()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_entry, args=(task, payload, confinement, send), daemon=True
    )
    _start(process)
    send.close()
    deadline = time.monotonic() + limits.wall_s
    budget = limits.output_mb * 1024 * 1024
    partial: Any = None
    try:
        while True:  # progress messages, then the result (or the child's end)
            if not receive.poll(max(0.0, deadline - time.monotonic())):
                _kill(process)
                raise LimitExceeded(
                    f"exceeded the limit of {limits.wall_s:g} s of wall time", partial
                )
            try:
                data = receive.recv_bytes(maxlength=budget)
            except EOFError:  # the child ended without a result
                break
            except OSError as exc:  # a message larger than what is left of the budget
                _kill(process)
                raise LimitExceeded(
                    f"exceeded the limit of {limits.output_mb} MiB of output", partial
                ) from exc
            budget -= len(data)
            kind, _, body = data.partition(b"\n")
            if kind == b"result":
                process.join(5)
                return json.loads(body)
            if kind == b"partial":
                partial = json.loads(body)
            else:  # the task failed and said why
                process.join(5)
                raise IsolationFailed(body.decode("utf-8", "replace"), partial)
        process.join(5)
        if process.is_alive():
            _kill(process)
    finally:
        receive.close()
    raise _failure(process.exitcode, limits, partial)


def _start(process: Any) -> None:
    """Start `process` without making it run the program's main script again.

    multiprocessing re-runs the main script in every child when the program was started
    from a file (the `flujo` console script is one): tens to hundreds of milliseconds per
    child, for nothing. The child needs only `flujo.bot.isolated`, already loaded in the
    fork server, so the main module's file is hidden while the child's start-up data is
    taken (a few microseconds, under a lock).
    """
    main = sys.modules.get("__main__")
    with _start_lock:
        hidden = main is not None and "__file__" in main.__dict__
        path = main.__dict__.pop("__file__") if hidden and main is not None else None
        try:
            process.start()
        finally:
            if hidden and main is not None:
                main.__dict__["__file__"] = path


def _failure(code: int | None, limits: IsolationLimits, partial: Any) -> IsolationFailed:
    if code == EXIT_MEMORY:
        return LimitExceeded(f"exceeded the limit of {limits.memory_mb} MiB of memory", partial)
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return LimitExceeded(f"exceeded the limit of {limits.cpu_s} s of CPU time", partial)
    if code == -signal.SIGXFSZ:
        return LimitExceeded(
            f"exceeded the limit of {limits.file_mb} MiB per written file", partial
        )
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return IsolationFailed(f"crashed ({name})", partial)
    return IsolationFailed(f"stopped unexpectedly (exit code {code})", partial)


def _kill(process: Any) -> None:
    process.kill()
    process.join(5)


def _child_entry(task: str, payload: dict[str, Any], confinement: Confinement, send: Any) -> None:
    from flujo.bot.isolated import child_main

    child_main(task, payload, confinement, send)


@dataclass(frozen=True, slots=True)
class Isolated:
    """The App's `Evaluator`: each spec in its own confined child process.

    The skill allow-list is the bot's own (`allow`, plus installed plugins), never a
    repository's. A spec whose child overruns a limit or crashes gets that as its own
    diagnostic; the other specs of the commit are checked as usual, until the commit's
    budget (`limits.commit_s`) is spent.
    """

    allow: tuple[str, ...] = ()
    limits: IsolationLimits = field(default_factory=IsolationLimits)
    time_limit_s: float = TEST_TIME_LIMIT_S

    async def plan(self, root: Path, config_files: list[str], listing: list[str]) -> Plan:
        if not config_files:  # no config to read: the defaults, on names alone (no child)
            defaults = RepoConfig()
            return Plan(wanted_files(listing, defaults), tuple(defaults.specs))
        payload = {"root": str(root), "config_files": config_files, "listing": listing}
        found = await run_isolated("plan", payload, scratch=root, limits=self.limits)
        return Plan(list(found["wanted"]), tuple(found["specs"]))

    async def references(self, root: Path, paths: list[str]) -> list[str]:
        found: set[str] = set()
        for path in paths:  # one by one: a spec that cannot be read hides no other's files
            if not any(word in (root / path).read_bytes() for word in REFERENCE_WORDS):
                continue  # it names no other file: no child needed (a search, no parsing)
            payload = {"root": str(root), "paths": [path]}
            try:
                answer = await run_isolated("references", payload, scratch=root, limits=self.limits)
            except IsolationFailed:  # checking the spec itself will report what is wrong
                continue
            found.update(answer["references"])
        return sorted(found)

    async def evaluate(
        self, root: Path, files: list[str], overrides: Mapping[str, Override]
    ) -> CommitReport:
        from flujo.bot.report_codec import decode_report, decode_spec

        report = unread_config(files)  # no config and specs found by name: no child
        if report is None:
            payload: dict[str, Any] = {"root": str(root), "files": files}
            report = decode_report(
                await run_isolated("config", payload, scratch=root, limits=self.limits)
            )
        deadline = time.monotonic() + self.limits.commit_s
        for path in spec_paths(files, report.patterns):
            left = deadline - time.monotonic()
            if left <= 0:
                reason = (
                    "was not checked: the commit's specs exceeded the limit of "
                    f"{self.limits.commit_s:g} s together"
                )
                report.specs.append(_unchecked(path, reason))
                continue
            limits = self.limits.model_copy(update={"wall_s": min(self.limits.wall_s, left)})
            request = {
                "root": str(root),
                "path": path,
                "allow": list(self.allow),
                "overrides": {k: _override(v) for k, v in overrides.items()},
                "time_limit_s": self.time_limit_s,
            }
            try:
                found = await run_isolated("evaluate_spec", request, scratch=root, limits=limits)
                report.specs.append(decode_spec(found))
            except IsolationFailed as exc:
                if exc.partial is None:  # it stopped while reading the spec
                    reason = f"could not be checked: reading it {exc.reason}"
                    report.specs.append(_unchecked(path, reason))
                else:  # validated; the tests stopped
                    spec = decode_spec(exc.partial)
                    spec.test_error = f"the tests {exc.reason}"
                    report.specs.append(spec)
        return report

    async def suggest(self, root: Path, request: CycleRequest) -> Cycle:
        """The suggestion cycle in a confined child: it may write only the snapshot and the
        repository's run store, and connect only to the evaluation provider (if any)."""
        from flujo.bot.suggestion_codec import decode_cycle

        base_url = request.evaluation.base_url if request.evaluation is not None else None
        found = await self._with_store("suggest", root, request.store, base_url, request.to_json())
        return _decoded(decode_cycle, found)

    async def bake(self, root: Path, request: BakeRequest) -> BakeLook:
        """One look of a bake-in in a confined child: like the suggestion cycle, it may
        write only the snapshot and the run store, and connect only to the evaluation
        provider."""
        from flujo.bot.bake_cycle import decode_look

        found = await self._with_store(
            "bake", root, request.store, request.evaluation.base_url, request.to_json()
        )
        return _decoded(decode_look, found)

    async def _with_store(
        self, task: str, root: Path, store: str, base_url: str | None, request: dict[str, Any]
    ) -> Any:
        """Run `task` in a child that may write the snapshot and the run store at `store`
        and connect only to the model provider at `base_url` (none: no network)."""
        path = str(Path(store).resolve())
        writable = (path, f"{path}-wal", f"{path}-shm", f"{path}-journal")
        hosts = await provider_addresses(base_url) if base_url is not None else ()
        payload = {"root": str(root), "allow": list(self.allow), "request": request}
        limits = self.limits.model_copy(update={"wall_s": self.limits.commit_s})
        return await run_isolated(
            task, payload, scratch=root, limits=limits, allowed_hosts=hosts, writable=writable
        )


async def provider_addresses(base_url: str) -> tuple[str, ...]:
    """The addresses of the evaluation provider (the only ones a cycle may connect to)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    found = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return tuple(sorted({str(info[4][0]) for info in found}))


def _override(override: Override) -> dict[str, str]:
    return {"policy_id": override.policy_id, "by": override.by, "at": override.at}


def _unchecked(path: str, reason: str) -> SpecReport:
    """A spec the bot could not judge: an error of its own, so every check fails."""
    message = f"This spec {reason}."
    return SpecReport(path, diagnostics=[Diagnostic(message, "limit-exceeded", path, 1, 1)])


def _decoded(decode: Callable[[Any], _T], found: Any) -> _T:
    """The child's result through its strict decoder; unreadable: the child failed."""
    try:
        return decode(found)
    except ValueError as exc:
        raise IsolationFailed(
            f"sent a result the bot cannot read ({exc.__class__.__name__})"
        ) from None
