"""`flujo init [DIR]`: a repository ready for Flujo in one command, tests passing offline."""

from __future__ import annotations

from pathlib import Path

import click

from flujo.cli import UsageError


@click.command()
@click.argument(
    "directory", default=".", type=click.Path(file_okay=False, path_type=Path), metavar="[DIR]"
)
def init(directory: Path) -> None:
    """Set up DIR (default: the current folder) for Flujo.

    \b
    Writes:
      flujo/triage.yaml             a sample pipeline with a test and a policy
      flujo/cassettes/triage/       its recorded model calls (from Flujo's fake model),
                                    so `flujo test` passes offline right away
      flujo/inputs/triage.jsonl     sample inputs for `flujo run --inputs`
      .github/flujo.yml             where the repository's specs are
      .gitignore                    gains `.flujo/` (the local run store and caches)

    Nothing is overwritten: if one of these files exists, it says which and writes
    nothing (exit 2).
    """
    from flujo.cli import starter

    spec = directory / starter.SPEC_FOLDER / starter.SPEC_NAME
    inputs = directory / starter.SPEC_FOLDER / "inputs" / f"{spec.stem}.jsonl"
    config = directory / ".github" / "flujo.yml"
    cassettes = _cassette_folder(spec)
    existing = [path for path in (spec, inputs, config, cassettes) if path.exists()]
    existing += [p for p in (directory / ".github" / "flujo.yaml",) if p.exists()]
    if existing:
        names = ", ".join(str(path) for path in existing)
        raise UsageError(f"flujo init: not overwriting what exists: {names} (nothing written)")
    for path, text in ((spec, starter.SPEC), (inputs, starter.INPUTS), (config, starter.CONFIG)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _record_cassette(spec)
    ignored = _ignore(directory / ".gitignore", starter.GITIGNORE_ENTRY)
    for path in (spec, cassettes, inputs, config):
        click.echo(f"wrote {path}{'/' if path.is_dir() else ''}")
    if ignored:
        click.echo(f"added {starter.GITIGNORE_ENTRY} to {directory / '.gitignore'}")
    click.echo(
        "\nNext:\n"
        f"  flujo validate {spec.parent}      # check the spec\n"
        "  flujo test                # run its test (the model replies are replayed)\n"
        f'  flujo run {spec} --fake --input \'{{"ticket": "I was charged twice"}}\'\n'
        "The cassette holds replies of Flujo's fake model; record real ones with\n"
        f"  flujo test {spec} --live --record   (OPENAI_API_KEY, OPENAI_BASE_URL)"
    )


def _cassette_folder(spec: Path) -> Path:
    from flujo.engine.cassette import cassette_folder

    return cassette_folder(spec)


def _record_cassette(spec: Path) -> None:
    """Run the sample's tests once on the fake model, recording its model calls."""
    import asyncio

    from flujo.engine.embedded_tests import run_tests
    from flujo.engine.session import SessionOptions, session
    from flujo.spec.model import Pipeline

    pipeline = Pipeline.from_yaml(spec)
    options = SessionOptions(
        fake=True, record=_cassette_folder(spec), use_store=False, export=False, origin="test"
    )

    async def main() -> None:
        async with session(pipeline, options) as runner:
            results = await run_tests(pipeline, runner, spec=str(spec))
        failed = [r.name for r in results if r.outcome != "passed"]
        if failed:  # a bug in the starter files, never the user's doing
            raise RuntimeError(f"the sample's tests failed while recording: {failed}")

    asyncio.run(main())


def _ignore(gitignore: Path, entry: str) -> bool:
    """Add `entry` to a .gitignore (made if missing) unless a line already says it."""
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if any(line.strip() in (entry, entry.rstrip("/"), "/" + entry) for line in text.splitlines()):
        return False
    prefix = "" if not text or text.endswith("\n") else "\n"
    gitignore.write_text(f"{text}{prefix}{entry}\n", encoding="utf-8")
    return True
