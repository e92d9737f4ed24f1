"""Record and replay model calls at the HTTP layer, as an httpx transport.

Give the openai client an httpx client that uses a cassette::

    cassette = Cassette("cassettes/triage", mode="replay")
    client = AsyncOpenAI(api_key=..., http_client=httpx.AsyncClient(transport=cassette))

`record` forwards each request to a real transport and writes one JSON file per request,
named by `request_key` (the SHA-256 of method, path and canonical JSON body), then
answers with exactly what a later replay gives. `replay` answers from those files and
raises `CassetteMiss` for a request it has no file for; it never touches the network.

Nothing secret is stored: request headers (Authorization, api-key, cookies...) are neither
stored nor part of the key, response headers are kept only from a short allow-list, query
parameters that carry keys are dropped, and the API key itself is redacted from the
stored text should a response echo it. Files use sorted keys and indentation, so they
diff well. Transient failures (429 and 5xx) are passed on but not recorded; when the
same request is recorded twice, the last response wins.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from flujo.engine.cassette_miss import CassetteMiss as CassetteMiss  # re-exported

Mode = Literal["record", "replay"]
FORMAT_VERSION = 1
REDACTED = "[REDACTED]"

KEPT_RESPONSE_HEADERS = ("content-type", "retry-after", "retry-after-ms", "x-request-id")
SECRET_HEADERS = ("authorization", "proxy-authorization", "api-key", "x-api-key")
SECRET_QUERY_PARAMS = frozenset(
    {"api-key", "api_key", "apikey", "key", "token", "access_token", "sig", "signature"}
)
_MIN_SECRET_LENGTH = 16  # shorter values (e.g. "test") are too likely to occur by chance


def cassette_folder(spec: Path) -> Path:
    """Where a spec's recorded model calls live: cassettes/<spec name>/ beside it."""
    return spec.parent / "cassettes" / spec.stem


class Cassette(httpx.AsyncBaseTransport):
    """An httpx transport that records to, or replays from, a directory of JSON files."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        mode: Mode = "replay",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if mode not in ("record", "replay"):
            raise ValueError(f"cassette mode must be 'record' or 'replay', not {mode!r}")
        self.directory = Path(directory)
        self.mode: Mode = mode
        self.recorded = 0
        self.replayed = 0
        self._transport = transport
        if mode == "record" and transport is None:
            self._transport = httpx.AsyncHTTPTransport()

    def path_for(self, key: str) -> Path:
        """The file holding the recording of a request key."""
        return self.directory / f"{key}.json"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        stored_request = stored_request_of(request)
        key = canonical_key(stored_request)
        if self.mode == "replay":
            return self._replay(request, stored_request, key)
        return await self._record(request, stored_request, key)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()

    def _replay(
        self, request: httpx.Request, stored_request: dict[str, Any], key: str
    ) -> httpx.Response:
        path = self.path_for(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CassetteMiss(
                key=key,
                method=request.method,
                path=stored_request["path"],
                model=_model_of(stored_request),
                directory=self.directory,
            ) from None
        self.replayed += 1
        return build_response(entry["response"], request)

    async def _record(
        self, request: httpx.Request, stored_request: dict[str, Any], key: str
    ) -> httpx.Response:
        assert self._transport is not None
        live = await self._transport.handle_async_request(request)
        try:
            content = await live.aread()
        finally:
            await live.aclose()
        stored_response = stored_response_of(live.status_code, live.headers, content)
        if not _is_transient(live.status_code):
            entry = {
                "version": FORMAT_VERSION,
                "request": stored_request,
                "response": stored_response,
            }
            self._write(key, entry, _secrets_of(request))
            self.recorded += 1
        return build_response(stored_response, request)

    def _write(self, key: str, entry: dict[str, Any], secrets: list[str]) -> None:
        text = json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        self.directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=self.directory, suffix=".tmp", delete=False
        ) as tmp:
            tmp.write(text)
        os.replace(tmp.name, self.path_for(key))


def stored_request_of(request: httpx.Request) -> dict[str, Any]:
    """What identifies a request: method, path (with safe query) and body. No headers."""
    return {
        "method": request.method.upper(),
        "path": _safe_path(request.url),
        **_body(request.content, request.headers.get("content-type", "")),
    }


def canonical_key(stored_request: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a stored request."""
    canonical = json.dumps(
        stored_request, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def request_key(request: httpx.Request) -> str:
    """The cassette key of a request whose body has been read."""
    return canonical_key(stored_request_of(request))


def stored_response_of(status: int, headers: httpx.Headers, content: bytes) -> dict[str, Any]:
    """A response as stored: status, allow-listed headers and the (decoded) body."""
    kept = {name: headers[name] for name in KEPT_RESPONSE_HEADERS if name in headers}
    return {"status": status, "headers": kept, **_body(content, headers.get("content-type", ""))}


def build_response(stored: dict[str, Any], request: httpx.Request) -> httpx.Response:
    """An httpx response from its stored form."""
    if "json" in stored:
        content = json.dumps(stored["json"], ensure_ascii=False).encode("utf-8")
    elif "text" in stored:
        content = stored["text"].encode("utf-8")
    else:
        content = base64.b64decode(stored.get("base64", ""))
    return httpx.Response(
        stored["status"], headers=stored.get("headers", {}), content=content, request=request
    )


def _body(content: bytes, content_type: str) -> dict[str, Any]:
    """`{"json": ...}`, `{"text": ...}`, `{"base64": ...}`, or `{}` for no body."""
    if not content:
        return {}
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(content).decode("ascii")}
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return {"json": json.loads(text)}
        except ValueError:
            pass
    return {"text": text}


def _safe_path(url: httpx.URL) -> str:
    params = sorted(
        (k, v) for k, v in url.params.multi_items() if k.lower() not in SECRET_QUERY_PARAMS
    )
    return f"{url.path}?{urlencode(params)}" if params else url.path


def _model_of(stored_request: dict[str, Any]) -> str | None:
    body = stored_request.get("json")
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _secrets_of(request: httpx.Request) -> list[str]:
    """Credential values of a request, to redact should a response echo them."""
    found = []
    for name in SECRET_HEADERS:
        value = request.headers.get(name, "")
        scheme, _, token = value.partition(" ")
        for candidate in (value, token if scheme.lower() in ("bearer", "basic") else ""):
            if len(candidate) >= _MIN_SECRET_LENGTH:
                found.append(candidate)
    return sorted(set(found), key=len, reverse=True)


def _is_transient(status: int) -> bool:
    return status == 429 or status >= 500
