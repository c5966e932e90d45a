"""`schema`: the config's JSON Schema, for editors (no AWS, no state DB)."""

from __future__ import annotations

import json

import typer

from snapworker.entrypoints.app import app


@app.command()
def schema() -> None:
    """Print the config file's JSON Schema (for an editor: completion and checks as you type).

    Save it beside the config (`snapworker schema > snapworker.schema.json`) and put
    `# yaml-language-server: $schema=./snapworker.schema.json` at the top of the config: the
    YAML extension of VS Code (Red Hat's) and other editors using yaml-language-server then
    complete keys and flag unknown keys and wrong types. `validate` checks the rest.
    """
    from snapworker.config.schema import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2))
