"""`CassetteMiss`, apart from the cassette itself so that the runner can name it without
importing httpx (the cassette's HTTP transport) on every start."""

from __future__ import annotations

from pathlib import Path

from flujo.spec.errors import EXIT_INVALID, FlujoError


class CassetteMiss(FlujoError):
    """A replayed request has no recording.

    `model`, `method`, `path`, `key` and `directory` describe it; `for_step` adds the
    name of the pipeline step that made it. Exit code 1: the run fails.
    """

    exit_code = EXIT_INVALID

    def __init__(
        self,
        *,
        key: str,
        method: str,
        path: str,
        model: str | None,
        directory: Path,
        step: str | None = None,
    ) -> None:
        self.key = key
        self.method = method
        self.path = path
        self.model = model
        self.directory = directory
        self.step = step
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"step '{self.step}' calls " if self.step else "a call to "
        what = f"model '{self.model}'" if self.model else f"{self.method} {self.path}"
        return (
            f"no recording for {where}{what} in cassette {self.directory} "
            f"(request {self.key[:12]}, {self.method} {self.path}): the prompt, model or "
            f"parameters differ from every recorded call. Record it again: "
            f"`flujo run --record {self.directory} …`, or for embedded tests "
            f"`flujo test --live --record` (a live server and key) or `--fake --record`."
        )

    def for_step(self, step: str) -> CassetteMiss:
        """The same miss, naming the step that made the call."""
        return CassetteMiss(
            key=self.key,
            method=self.method,
            path=self.path,
            model=self.model,
            directory=self.directory,
            step=step,
        )
