"""`flujo schema`"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the schema to this file instead of standard output.",
)
@click.option(
    "--markdown",
    is_flag=True,
    help="The reference of every step kind and field in Markdown instead (docs/spec-reference.md).",
)
def schema(output: Path | None, markdown: bool) -> None:
    """Print the JSON Schema of the spec format (for editors and other tools).

    \b
    Point the YAML language server at it with a first line in each spec:
      # yaml-language-server: $schema=./flujo.schema.json
    """
    if markdown:
        from flujo.spec.reference import reference_markdown

        text = reference_markdown()
    else:
        from flujo.spec.schema import schema_text

        text = schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
