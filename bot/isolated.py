"""The child side of isolation: confine this process, then run one task on untrusted content.

Imported by the fork server before any task (so a task starts warm). `child_main` first
applies the limits (address space, CPU, open files, file size, no core dumps), a clean
environment, the scratch folder as working directory and HOME, and an audit hook that
refuses network connections, new processes, native libraries and writes outside the
scratch folder; only then does the task read the repository's files.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Imported here, in the fork server, so that no child imports them again (each would
# cost a child hundreds of milliseconds: several are imported lazily by their users).
# croniter (a repository's `pull_requests.schedule`, validated with its config) loads native
# code through dateutil (ctypes), which a confined child may not: it is loaded here.
import croniter  # noqa: F401

import flujo.bot.evaluate
import flujo.bot.snapshot
import flujo.engine.embedded_tests
import flujo.engine.session
import flujo.spec.expressions.explain  # why a policy or assertion failed
import flujo.spec.lint
import flujo.spec.load  # noqa: F401
from flujo.bot.isolation import EXIT_MEMORY, SAFE_ENVIRONMENT, Confinement
from flujo.spec.errors import FlujoError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

REFUSED_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "ctypes.dlopen",
        "ctypes.cdata",
        "socket.bind",
    }
)
PATH_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.mkdir",
        "os.chmod",
        "os.chown",
        "os.symlink",
        "os.link",
        "os.truncate",
        "os.utime",
        "shutil.rmtree",
    }
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Refused(FlujoError, PermissionError):
    """An isolated task tried something it may never do."""


def child_main(
    task: str, payload: dict[str, Any], confinement: Confinement, send: Connection
) -> None:
    """Confine this process, run `task` on `payload`, send its messages, exit.

    Messages are `partial\n<json>` (progress a task reports), then `result\n<json>`,
    or `error\n<text>` when the task raised.
    """

    def progress(value: Any) -> None:
        send.send_bytes(b"partial\n" + _json(value))

    try:
        confine(confinement)
        result = TASKS[task](payload, progress)
        send.send_bytes(b"result\n" + _json(result))
    except MemoryError:
        os._exit(EXIT_MEMORY)
    except BaseException as exc:  # any failure is the task's answer, never a hang
        try:
            message = f"error\n{type(exc).__name__}: {exc}"[:2000]
            send.send_bytes(message.encode("utf-8", "replace"))
        finally:
            os._exit(1)
    os._exit(0)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def confine(confinement: Confinement) -> None:
    """Apply the limits, environment and audit hook to this process (irreversibly)."""
    limits = [
        (resource.RLIMIT_AS, confinement.memory_bytes, confinement.memory_bytes),
        (resource.RLIMIT_CPU, confinement.cpu_s, confinement.cpu_s + 5),
        (resource.RLIMIT_NOFILE, confinement.open_files, confinement.open_files),
        (resource.RLIMIT_FSIZE, confinement.file_bytes, confinement.file_bytes),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for kind, soft, hard in limits:
        resource.setrlimit(kind, (soft, hard))
    scratch = os.path.realpath(confinement.scratch)
    os.chdir(scratch)
    kept = {k: v for k, v in os.environ.items() if k in SAFE_ENVIRONMENT}
    os.environ.clear()
    os.environ.update(kept, HOME=scratch, TMPDIR=scratch)
    import tempfile

    tempfile.tempdir = scratch
    sys.addaudithook(_guard(scratch, confinement.allowed_hosts, confinement.writable))


def _guard(
    scratch: str, hosts: tuple[str, ...], files: tuple[str, ...] = ()
) -> Callable[[str, tuple[Any, ...]], None]:
    inside = scratch.rstrip("/") + "/"
    extra = {os.path.realpath(f) for f in files} | {
        os.path.dirname(os.path.realpath(f)) for f in files
    }

    def writable(path: Any) -> bool:
        if isinstance(path, int):
            return True  # an open descriptor: opening it was checked
        name = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
        real = os.path.realpath(name)
        return real == scratch or real.startswith(inside) or real == os.devnull or real in extra

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in REFUSED_EVENTS:
            raise Refused(f"isolated checks may not use {event}")
        if event == "socket.connect" or event == "socket.sendto":
            address = args[1]
            host = address[0] if isinstance(address, tuple) and address else None
            if host is None or str(host) not in hosts:
                raise Refused(f"isolated checks may not connect to {address!r}")
        elif event == "open":
            path, mode, flags = args
            wants_write = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            if wants_write and not writable(path):
                raise Refused(f"isolated checks may not write to {path!r}")
        elif event in PATH_EVENTS:
            for path in args[:2]:
                if isinstance(path, (str, bytes, os.PathLike)) and not writable(path):
                    raise Refused(f"isolated checks may not change {path!r}")

    return hook


Progress = Callable[[Any], None]


def _config(payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """The commit's config: its path, problems and `specs:` globs (an empty report)."""
    from flujo.bot.evaluate import commit_config
    from flujo.bot.report_codec import encode_report

    return encode_report(commit_config(Path(payload["root"]), payload["files"]))


def _evaluate_spec(payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Validate one spec (reported as progress), then run its tests and judge it."""
    import asyncio

    from flujo.bot.commit_report import Override
    from flujo.bot.evaluate import evaluate_spec
    from flujo.bot.report_codec import encode_spec
    from flujo.spec.registry import StepRegistry

    registry = StepRegistry(allow=payload["allow"])
    overrides = {k: Override(**v) for k, v in payload["overrides"].items()}
    report = asyncio.run(
        evaluate_spec(
            Path(payload["root"]),
            payload["path"],
            registry,
            overrides,
            payload["time_limit_s"],
            on_validated=lambda spec: progress(encode_spec(spec)),
        )
    )
    return encode_spec(report)


def _plan(payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Which files of a commit to fetch, from its `.github/flujo.yml` (already on disk)."""
    from flujo.bot.evaluate import read_config, wanted_files

    config, _, _ = read_config(Path(payload["root"]), payload["config_files"])
    return {"wanted": wanted_files(payload["listing"], config), "specs": list(config.specs)}


def _references(payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Repository paths the given spec files read (0.x imports, `from_file` prompts)."""
    from flujo.bot.evaluate import read_references

    return {"references": read_references(Path(payload["root"]), payload["paths"])}


def _suggest(payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """The suggestion cycle on a snapshot (`flujo.bot.suggestion_cycle`)."""
    import asyncio

    from flujo.bot.suggestion_codec import encode_cycle
    from flujo.bot.suggestion_cycle import CycleRequest, run_cycle
    from flujo.spec.registry import StepRegistry

    request = CycleRequest.from_json(payload["request"])
    registry = StepRegistry(allow=payload["allow"])
    return encode_cycle(asyncio.run(run_cycle(Path(payload["root"]), request, registry)))


def _bake(payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """One look of a bake-in on a snapshot (`flujo.bot.bake_cycle`)."""
    import asyncio

    from flujo.bot.bake_cycle import BakeRequest, run_bake
    from flujo.spec.registry import StepRegistry

    request = BakeRequest.from_json(payload["request"])
    registry = StepRegistry(allow=payload["allow"])
    look = asyncio.run(run_bake(Path(payload["root"]), request, registry))
    return look.model_dump(mode="json")


TASKS: dict[str, Callable[[dict[str, Any], Progress], Any]] = {
    "bake": _bake,
    "config": _config,
    "evaluate_spec": _evaluate_spec,
    "plan": _plan,
    "references": _references,
    "suggest": _suggest,
}


_WARM_SPEC = """\
version: "1"
name: warm
steps:
  - name: greet
    uses: template_render
    with: {template: "Hello, {{ input.name }}!"}
tests:
  - name: greets
    input: {name: Ada}
    assertions: ["output == 'Hello, Ada!'"]
policies:
  - {id: short, assert: "len(output) < 50", action: FAIL_RUN}
"""


def _warm() -> None:
    """Check a small spec once, in the fork server: every module a check imports lazily
    (the engine's session, cassettes, templates, reports) is then already loaded in
    each child (about 150 ms a child would otherwise spend)."""
    import asyncio
    import tempfile

    from flujo.bot.evaluate import evaluate
    from flujo.bot.report_codec import encode_report
    from flujo.spec.registry import StepRegistry

    with tempfile.TemporaryDirectory(prefix="flujo-warm-") as folder:
        root = Path(folder)
        (root / "flujo").mkdir()
        (root / "flujo" / "warm.yml").write_text(_WARM_SPEC, encoding="utf-8")
        report = asyncio.run(evaluate(root, ["flujo/warm.yml"], registry=StepRegistry()))
        assert report.specs and report.specs[0].valid, report  # else nothing was warmed
        encode_report(report)


def _freeze() -> None:
    """Hide everything the fork server holds from the garbage collector, children included.

    A child inherits the server's collection counters: whenever they call for a full
    collection (how many times the imports and the warm-up allocated, which depends on
    whether bytecode was cached), each child would walk all the ~50,000 objects it
    inherited, writing to every page that holds them: 20-30 ms of CPU and a copy of the
    heap per child. Frozen, they are never walked; a child still collects what it creates.
    """
    gc.collect()
    gc.freeze()


if __name__ != "__main__" and os.environ.get("FLUJO_FORKSERVER_WARM", "1") == "1":
    with contextlib.suppress(Exception):  # an optimisation: children import lazily anyway
        _warm()
    _freeze()
