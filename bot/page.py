"""The suggestion page: headline, bullets, the before/after diagrams side by side and the
YAML diff, as one self-contained HTML file (Mermaid is inlined: no CDN, no network).

Served by the bot at `/suggestions/<id>` and written by `flujo suggest --html FILE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from flujo.learn.proposal import SuggestionView
from flujo.templates.environment import mermaid_js, product_environment


@dataclass(frozen=True, slots=True)
class PageSection:
    id: str
    title: str
    headline: str
    spec: str
    risk: str
    bullets: list[str]
    before: str
    after: str
    diff: str
    quality: str = ""
    why: str = ""
    step: str = ""
    watch_for: str = ""


def render_page(views: list[SuggestionView]) -> str:
    """One HTML page showing each suggestion."""
    sections = [
        PageSection(
            v.id,
            v.title,
            v.headline,
            v.spec,
            v.risk,
            v.bullets,
            v.before,
            v.after,
            v.diff,
            v.quality,
            v.why,
            v.step,
            v.watch_for,
        )
        for v in views
    ]
    title = sections[0].title if len(sections) == 1 else f"{len(sections)} Flujo suggestions"
    return _template().render(suggestions=sections, title=title, mermaid_js=mermaid_js())


def _template() -> jinja2.Template:
    return product_environment(autoescape=True).get_template("suggestion_page.html.j2")
