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
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the spec format (for editors and other tools).

    \b
    Point the YAML language server at it with a first line in each spec:
      # yaml-language-server: $schema=./flujo.schema.json
    """
    from flujo.spec.schema import schema_text

    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
