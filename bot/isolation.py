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
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Environment variables a child may see; everything else (tokens, keys, secrets) stays out.
SAFE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONHASHSEED")
# Exit codes the child uses to say which limit it hit (see flujo.bot.isolated).
EXIT_MEMORY = 86
EXIT_FAILED = 87


class IsolationLimits(BaseModel):
    """What one isolated task may use; every figure is a setting (`FLUJO_BOT_ISOLATION_*`)."""

    model_config = ConfigDict(frozen=True)

    memory_mb: int = Field(2048, ge=256, description="Address space of the child, MiB.")
    cpu_s: int = Field(300, ge=1, description="CPU seconds of the child.")
    wall_s: float = Field(600.0, gt=0, description="Seconds until the child is killed.")
    open_files: int = Field(256, ge=32, description="Open file descriptors.")
    file_mb: int = Field(64, ge=1, description="Largest file the child may write, MiB.")
    output_mb: int = Field(32, ge=1, description="Largest result the child may return, MiB.")

    def describe(self) -> str:
        return (
            f"{self.memory_mb} MiB of memory, {self.cpu_s} s of CPU, {self.wall_s:g} s in "
            f"all, {self.open_files} open files, {self.output_mb} MiB of output"
        )


class IsolationFailed(Exception):
    """The child could not finish its task (it crashed or reported an error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


_lock = threading.Lock()
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
) -> Any:
    """Run `task` of `flujo.bot.isolated.TASKS` on `payload` in a confined child.

    `scratch` is the only folder the child may write to (its working directory). Returns
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
    process.start()
    send.close()
    data: bytes | None = None
    try:
        if receive.poll(limits.wall_s):
            try:
                data = receive.recv_bytes(maxlength=limits.output_mb * 1024 * 1024)
            except EOFError:  # the child died without answering
                data = None
            except OSError as exc:  # the answer is larger than allowed
                _kill(process)
                raise LimitExceeded(
                    f"exceeded the limit of {limits.output_mb} MiB of output"
                ) from exc
        else:
            _kill(process)
            raise LimitExceeded(f"exceeded the limit of {limits.wall_s:g} s of wall time")
        process.join(5)
        if process.is_alive():
            _kill(process)
    finally:
        receive.close()
    code = process.exitcode
    if data is not None and code == 0:
        return json.loads(data)
    raise _failure(code, data, limits)


def _failure(code: int | None, data: bytes | None, limits: IsolationLimits) -> IsolationFailed:
    if code == EXIT_MEMORY:
        return LimitExceeded(f"exceeded the limit of {limits.memory_mb} MiB of memory")
    if code == -signal.SIGXCPU or code == -signal.SIGKILL:
        return LimitExceeded(f"exceeded the limit of {limits.cpu_s} s of CPU time")
    if code == -signal.SIGXFSZ:
        return LimitExceeded(f"exceeded the limit of {limits.file_mb} MiB per written file")
    if code == EXIT_FAILED and data:
        return IsolationFailed(data.decode("utf-8", "replace"))
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return IsolationFailed(f"the checking process crashed ({name})")
    return IsolationFailed(f"the checking process stopped unexpectedly (exit code {code})")


def _kill(process: Any) -> None:
    process.kill()
    process.join(5)


def _child_entry(task: str, payload: dict[str, Any], confinement: Confinement, send: Any) -> None:
    from flujo.bot.isolated import child_main

    child_main(task, payload, confinement, send)
