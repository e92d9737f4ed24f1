"""Answers to `hitl` steps: a person at the terminal, or answers recorded in a cassette.

Whatever gives the answer, the runner checks it against the step's `input_schema`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from flujo.spec.errors import EXIT_INVALID, FlujoError

if TYPE_CHECKING:
    from flujo.spec.model import HitlStep

HUMAN_FOLDER = "human"
"""Sub-folder of a cassette holding recorded answers."""


class Human(Protocol):
    """Someone (or something) that answers a `hitl` step's question."""

    async def answer(self, step: HitlStep, question: str) -> Any: ...


class NoAnswer(FlujoError):
    """No answer can be had for a `hitl` step (retrying cannot help; exit code 1: the run
    fails). `resumable`: nobody could answer now (no terminal), but someone may later: a
    run with a store pauses instead (see `flujo.engine.checkpoint`)."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


def answer_problem(schema: dict[str, Any] | None, value: Any) -> str | None:
    """Why `value` does not satisfy `schema` (None when it does, or there is no schema)."""
    if schema is None:
        return None
    from flujo.spec.schemas import safe_validator

    error = next(iter(safe_validator(schema).iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return str(error.message) + (f" (at /{where})" if where else "")


def parse_answer(schema: dict[str, Any] | None, text: str) -> Any:
    """A typed answer: JSON when the schema wants more than a string, else the text."""
    if schema is None or schema.get("type") == "string":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class ConsoleHuman:
    """Asks at the terminal until the answer satisfies the step's `input_schema`."""

    async def answer(self, step: HitlStep, question: str) -> Any:
        return await asyncio.to_thread(self._ask, step, question)

    def _ask(self, step: HitlStep, question: str) -> Any:
        import click

        schema = step.input_schema
        hint = " (JSON)" if schema is not None and schema.get("type") != "string" else ""
        while True:
            try:
                text = click.prompt(f"[{step.name}] {question}{hint}", err=True)
            except click.Abort:  # end of input (not at a terminal) or Ctrl-C
                raise NoAnswer(f"no answer was given to '{step.name}'", resumable=True) from None
            value = parse_answer(schema, text)
            problem = answer_problem(schema, value)
            if problem is None:
                return value
            click.echo(f"That answer does not fit: {problem}. Please try again.", err=True)


class RecordedHumans:
    """Answers kept in `<cassette>/human/`: `replay` reads them, `record` asks `ask`
    and writes each answer down."""

    def __init__(
        self, folder: Path, mode: Literal["record", "replay"], ask: Human | None = None
    ) -> None:
        self.folder = Path(folder) / HUMAN_FOLDER
        self.mode = mode
        self.ask = ask

    def path_for(self, step: HitlStep, question: str) -> Path:
        key = json.dumps({"step": step.name, "question": question}, sort_keys=True)
        return self.folder / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.json"

    async def answer(self, step: HitlStep, question: str) -> Any:
        path = self.path_for(step, question)
        if self.mode == "replay":
            try:
                return json.loads(path.read_text(encoding="utf-8"))["answer"]
            except FileNotFoundError:
                raise NoAnswer(
                    f"no recorded answer for '{step.name}' in {self.folder.parent}; "
                    "record one with --record DIR"
                ) from None
        if self.ask is None:
            raise NoAnswer(f"nobody can answer '{step.name}'")
        value = await self.ask.answer(step, question)
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {"step": step.name, "question": question, "answer": value}
        path.write_text(json.dumps(entry, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return value


class GivenAnswers:
    """Answers given in advance (`flujo runs resume --answer`), as text, each used once:
    by step name, or (key None) to the first question asked; other questions go to `ask`
    (None: nobody, and a run with a store pauses again)."""

    def __init__(self, answers: dict[str | None, str], ask: Human | None = None) -> None:
        self.answers = dict(answers)
        self.ask = ask

    async def answer(self, step: HitlStep, question: str) -> Any:
        for key in (step.name, None):
            if key in self.answers:
                return parse_answer(step.input_schema, self.answers.pop(key))
        if self.ask is None:
            raise NoAnswer(f"no answer was given to '{step.name}'", resumable=True)
        return await self.ask.answer(step, question)
