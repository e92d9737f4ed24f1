"""Links to pages that cannot be guessed: `/suggestions/<owner>/<repo>/<token>` for a
suggestion, `/roi/<owner>/<repo>/<token>` for a repository's realised-ROI page.

A suggestion's id is computable offline from the spec's path and the patch, so it is
never the key to its page. The token is an HMAC of the repository and the id under a
server secret (derived from the App's webhook secret), so only someone who was shown the
link, in the pull request the bot opened, can open the page, and only for that repository.
"""

from __future__ import annotations

import hashlib
import hmac
import os

TOKEN_CHARS = 32


def page_key(webhook_secret: str | None) -> bytes:
    """The server secret for page tokens (random per process when there is no secret)."""
    if not webhook_secret:
        return os.urandom(32)
    return hmac.new(webhook_secret.encode(), b"flujo suggestion pages", hashlib.sha256).digest()


def page_token(key: bytes, repo: str, suggestion_id: str) -> str:
    message = f"{repo}\n{suggestion_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:TOKEN_CHARS]


def page_path(key: bytes, repo: str, suggestion_id: str) -> str:
    return f"/suggestions/{repo}/{page_token(key, repo, suggestion_id)}"


ROI_PAGE = "realised-roi"
"""What the ROI page's token signs besides the repository (never a suggestion's id: those
are 12 hex digits), so a suggestion's token never opens it, nor the reverse."""


def roi_path(key: bytes, repo: str) -> str:
    return f"/roi/{repo}/{page_token(key, repo, ROI_PAGE)}"
