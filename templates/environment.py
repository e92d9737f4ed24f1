"""The one Jinja environment for Flujo's own templates (this package's `*.j2` files).

`product_environment(autoescape=False)` renders Markdown (PR bodies, check summaries);
`product_environment(autoescape=True)` renders HTML (the suggestion page). Both load from
this package, fail on an undefined name (StrictUndefined), share the same whitespace
rules (a block tag's own line leaves nothing behind: `trim_blocks`, `lstrip_blocks`; the
last newline is kept) and the same filters. Each is built once per flag.

These templates are ours and trusted. Users' templates (in specs) go through the sandbox
of `flujo.spec.templating.untrusted_environment` instead.
"""

from __future__ import annotations

import html
import re
from functools import cache, lru_cache
from importlib import resources

import jinja2
from markupsafe import Markup

from flujo.spec.figures import money

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


@cache
def product_environment(autoescape: bool) -> jinja2.Environment:
    """The environment for this package's templates: HTML-escaping when `autoescape`."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flujo.templates", ""),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = cell
    env.filters["text"] = one_line
    env.filters["fence"] = unfence
    env.filters["bullet"] = bullet_html
    env.filters["diff_class"] = diff_class
    env.filters["money"] = money
    return env


def cell(value: object) -> str:
    """Safe inside a Markdown table cell (and inline code)."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def one_line(value: object) -> str:
    """A stranger's text (a spec's name, a message quoting a key) shown as plain text on one
    line in GitHub Markdown: HTML escaped, Markdown punctuation (links, images, emphasis,
    table pipes) backslash-escaped, and @mentions, #references and bare URLs broken with a
    zero-width space, so it can neither format, link nor notify anyone."""
    text = html.escape(str(value).replace("\n", " ").replace("\r", " "), quote=False)
    text = _MARKDOWN.sub(r"\\\g<0>", text)
    return _NOTIFY.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


_MARKDOWN = re.compile(r"[\\`*_\[\]()!|~]")
_NOTIFY = re.compile(r"[@#]\w|:/")


def unfence(value: object) -> str:
    """Text that cannot close a ``` code fence it is shown in."""
    return str(value).replace("```", "`\u200b``")


def bullet_html(text: str) -> Markup:
    """A bullet's Markdown (bold and code only) as safe HTML."""
    escaped = html.escape(text, quote=False)
    escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
    return Markup(_CODE.sub(r"<code>\1</code>", escaped))


def diff_class(line: str) -> str:
    """The CSS class of a unified diff's line."""
    if line.startswith(("+++", "---")):
        return "meta"
    return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")


@lru_cache(maxsize=1)
def mermaid_js() -> Markup:
    """Mermaid's bundle (`vendor/mermaid.min.js`), safe to inline in a `<script>` of a
    page: pages work with no CDN and no network."""
    source = resources.files("flujo.templates").joinpath("vendor/mermaid.min.js")
    # Inlined in a <script>: only a closing tag could end it early.
    return Markup(source.read_text(encoding="utf-8").replace("</script", "<\\/script"))
