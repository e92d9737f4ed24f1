"""Code scanning SARIF uploads, checked as GitHub checks them: gzip then base64, at most
10 MB compressed, a SARIF 2.1.0 log (validated against its JSON Schema), a known
commit and a branch or pull request ref."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import uuid
from functools import cache
from typing import TYPE_CHECKING, Any

from jsonschema import Draft4Validator

from tests.support.fakegithub.endpoints import R, Reply, _repo, ok, resolve_commit, route
from tests.support.fakegithub.state import GitHubError, invalid, not_found
from tests.support.specs import TESTS

if TYPE_CHECKING:
    from tests.support.fakegithub.server import Call, FakeGitHub

MAX_COMPRESSED = 10 * 1024 * 1024
REF = re.compile(r"refs/(heads|tags)/.+|refs/pull/\d+/(head|merge)")


@cache
def _validator() -> Draft4Validator:
    schema = json.loads((TESTS / "sarif" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    return Draft4Validator(schema)


def decode_sarif(encoded: str) -> dict[str, Any]:
    """The SARIF log of an upload (raises 422/413 as GitHub does)."""
    try:
        compressed = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("sarif is not valid base64", field_name="sarif") from None
    if len(compressed) > MAX_COMPRESSED:
        raise GitHubError(413, "Payload Too Large")
    try:
        log = json.loads(gzip.decompress(compressed))
    except (OSError, ValueError):
        raise invalid("sarif is not gzip-compressed JSON", field_name="sarif") from None
    problems = [e.message for e in _validator().iter_errors(log)][:3]
    if problems:
        raise invalid("invalid SARIF: " + "; ".join(problems), field_name="sarif")
    return log  # type: ignore[no-any-return]


@route("POST", R + "/code-scanning/sarifs")
def upload_sarif(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    body = call.body
    if not REF.fullmatch(body["ref"]):
        raise invalid(f"ref {body['ref']!r} is not a branch, tag or pull request ref")
    sha = resolve_commit(repo, body["commit_sha"])
    upload = {
        "id": str(uuid.uuid4()),
        "commit_sha": sha,
        "ref": body["ref"],
        "log": decode_sarif(body["sarif"]),
    }
    repo.sarif_uploads.append(upload)
    url = f"{fake.base_url}/repos/{repo.full_name}/code-scanning/sarifs/{upload['id']}"
    return ok({"id": upload["id"], "url": url}, 202)


@route("GET", R + "/code-scanning/sarifs/{sarif_id}")
def get_sarif(fake: FakeGitHub, call: Call) -> Reply:
    repo = _repo(call)
    for upload in repo.sarif_uploads:
        if upload["id"] == call.params["sarif_id"]:
            analyses = f"{fake.base_url}/repos/{repo.full_name}/code-scanning/analyses"
            return ok({"processing_status": "complete", "analyses_url": analyses, "errors": None})
    raise not_found()
