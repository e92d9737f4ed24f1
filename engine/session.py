"""Everything a run needs around the runner: models, store, exporters.

Used by `flujo run`, the demo and (later) `flujo test` and the bot, so that all of them
reach models, cassettes and the store the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flujo.engine.results import PipelineResult
from flujo.engine.runner import Runner
from flujo.spec.model import Pipeline


@dataclass(frozen=True)
class SessionOptions:
    """Where model calls go and where runs are kept."""

    base_url: str | None = None
    record: Path | None = None
    replay: Path | None = None
    fake: bool = False
    store: Path | str | None = None
    use_store: bool = True
    console_telemetry: bool = False
    export: bool = True
    """Send runs to the exporters the environment configures (OTLP); off where runs are
    checks, not traffic (the bot's checks, verifying suggestions)."""
    prices: dict[str, Any] | None = None
    """Price overrides by model; None: the `prices:` of the spec's repository config."""
    offline: bool = False
    """No model calls at all (tests with mocks only): model steps fail clearly."""
    ask: bool = False
    """`hitl` steps ask at the terminal (unless answers are replayed from a cassette)."""
    origin: str = "cli"
    """What starts these runs (recorded with each): cli, test, check, verification, eval,
    shadow (`sdk` is the Runner's own default)."""

    @property
    def mode(self) -> str:
        """How the runs reach models: replay, fake, mock (offline) or live."""
        if self.replay is not None:
            return "replay"
        if self.fake:
            return "fake"
        return "mock" if self.offline else "live"

    @classmethod
    def from_cli(cls, options: dict[str, Any]) -> SessionOptions:
        known = {k: v for k, v in options.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@contextlib.asynccontextmanager
async def session(
    pipeline: Pipeline, options: SessionOptions, registry: Any = None
) -> AsyncIterator[Runner]:
    """A ready Runner; closes clients, the fake server and exporters on exit."""
    from flujo.engine.pricing import table_version
    from flujo.engine.store import RunStore
    from flujo.engine.telemetry import OTelExport

    if registry is None:  # the allow-list of the repository the spec lives in
        from flujo.spec.load import registry_for

        source = pipeline.source
        registry = registry_for(Path(source.file)) if source and source.file != "<string>" else None
    source = pipeline.source
    if options.prices is None and source is not None and source.file != "<string>":
        from flujo.spec.prices_config import repository_prices

        options = dataclasses.replace(
            options, prices=repository_prices(Path(source.file)).overrides()
        )
    async with contextlib.AsyncExitStack() as stack:
        models = await _models(pipeline, options, stack)
        store = RunStore(options.store) if options.use_store else None
        if store is not None:
            stack.callback(store.close)
        export = (
            OTelExport.from_environment(console=options.console_telemetry)
            if options.export
            else OTelExport()
        )
        if export.enabled:  # flushing sends over the network: not on the event loop
            stack.push_async_callback(asyncio.to_thread, export.shutdown)
        yield Runner(
            pipeline,
            models=models,
            registry=registry,
            store=store,
            export=export,
            human=_human(options),
            mode=options.mode,
            origin=options.origin,
            plans=_plans(options),
            prices_version=table_version(options.prices),
        )


def _plans(options: SessionOptions) -> Any:
    """Where `jit` steps' plans are replayed from or recorded to (the cassette folder)."""
    from flujo.engine.jit import PlanBook

    if options.replay is not None:
        return PlanBook(options.replay, "replay")
    if options.record is not None:
        return PlanBook(options.record, "record")
    return PlanBook(None, "off")


def _human(options: SessionOptions) -> Any:
    """Who answers `hitl` steps: recorded answers, a person, or nobody (tests use mocks)."""
    from flujo.engine.human import ConsoleHuman, RecordedHumans

    if options.replay is not None:
        return RecordedHumans(options.replay, "replay")
    person = ConsoleHuman() if options.ask else None
    if options.record is not None:
        return RecordedHumans(options.record, "record", person)
    return person


async def _models(pipeline: Pipeline, options: SessionOptions, stack: Any) -> Any:
    if not _uses_agents(pipeline) or options.offline:
        return None
    from flujo.engine.agents import OpenAIModels

    models: Any
    if options.replay is not None:
        from flujo.engine.cassette import Cassette

        models = OpenAIModels(
            base_url="http://cassette.invalid/v1",
            transport=Cassette(options.replay, mode="replay"),
            prices=options.prices,
            max_retries=0,
        )
    elif options.fake and options.record is None:  # no HTTP to record: answered in process
        from flujo.engine.fake_models import InProcessFake

        models = InProcessFake(prices=options.prices)
    else:
        base_url = options.base_url
        if options.fake:
            from flujo.engine.fake_openai import FakeOpenAI

            server = await stack.enter_async_context(FakeOpenAI())
            base_url = server.base_url
        transport = None
        if options.record is not None:
            from flujo.engine.cassette import Cassette

            transport = Cassette(options.record, mode="record")
        try:
            models = OpenAIModels(base_url=base_url, transport=transport, prices=options.prices)
        except RuntimeError:
            return None  # model steps fail with the explanation when they run
    stack.push_async_callback(models.close)
    return models


def _uses_agents(pipeline: Pipeline) -> bool:
    """Whether a run may call a model: agents, `jit` steps (their plans may), or steps
    that use a model-backed skill."""
    from flujo.spec.skill_packs import model_skills

    packs = model_skills()
    if pipeline.agents or any(
        step.kind == "jit" or getattr(step, "uses", None) in packs for _, step in pipeline.walk()
    ):
        return True
    return any(_uses_agents(p) for p in pipeline.imported.values())


async def run_many(
    pipeline: Pipeline,
    inputs: Sequence[Any],
    options: SessionOptions,
    on_result: Callable[[PipelineResult], None] | None = None,
) -> list[PipelineResult]:
    """Run the pipeline once per input, in order, in one session."""
    results = []
    async with session(pipeline, options) as runner:
        for value in inputs:
            result = await runner.run(value)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
