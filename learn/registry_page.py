"""The registry page: the typed graph of skills (a Mermaid flowchart of types, one edge
per skill) and a table of every skill with its figures and badge, one self-contained
HTML file. Written by `flujo registry list --html FILE`, served by the bot at
`/registry`."""

from __future__ import annotations

import re

from flujo.spec.skill_figures import Listing, Manifest
from flujo.templates.environment import mermaid_js, product_environment

_ID = re.compile(r"[^A-Za-z0-9_]")


def render_registry_page(found: list[Listing], manifest: Manifest, observed_runs: int = 0) -> str:
    from flujo.learn.characterize import success_text
    from flujo.spec.figures import money

    rows = []
    for item in sorted(found, key=lambda i: (not i.plannable, i.input_type, i.name)):
        f = item.figures
        badge_class = (
            "measured"
            if item.badge.startswith("measured")
            else ("fake" if f is not None and f.mode == "fake" else ("none" if f is None else ""))
        )
        rows.append(
            {
                "name": item.name,
                "summary": item.summary,
                "kind": item.kind if item.origin != "model" else "model",
                "input_type": item.input_type,
                "output_type": item.output_type,
                "success": "—" if f is None else success_text(f),
                "cost": "—" if f is None else money(f.cost_usd),
                "latency": "not measured"
                if f is None or f.latency_p95_s is None
                else f"{f.latency_p95_s * 1000:.0f} ms",
                "badge": item.badge,
                "badge_class": badge_class,
            }
        )
    template = product_environment(autoescape=True).get_template("registry_page.html.j2")
    return template.render(
        rows=rows,
        graph=type_graph(found),
        plannable=sum(i.plannable for i in found),
        total=len(found),
        measured_at=manifest.measured_at,
        provider=manifest.provider,
        observed=observed_runs,
        mermaid_js=mermaid_js(),
    )


def type_graph(found: list[Listing]) -> str:
    """`flowchart LR`: a node per type, an edge per plannable skill labelled with its name."""
    lines = ["flowchart LR"]
    types = sorted({t for i in found if i.plannable for t in (i.input_type, i.output_type)})
    for name in types:
        lines.append(f'  t_{_ID.sub("_", name)}["{name}"]')
    for item in found:
        if item.plannable:
            label = item.name.replace('"', "'")
            source, target = (_ID.sub("_", t) for t in (item.input_type, item.output_type))
            lines.append(f'  t_{source} -- "{label}" --> t_{target}')
    return "\n".join(lines)
