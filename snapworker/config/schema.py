"""The configuration's JSON Schema (``snapworker schema``), from the pydantic models.

What an editor needs to complete keys and flag mistakes as they are typed: every key with its
type, default and description (the fields' docstrings), and ``additionalProperties: false``
wherever the models refuse unknown keys (all of them). Ranges, cron expressions, account ids
and the like are checked by ``snapworker validate``, which says more than a schema can.
"""

from __future__ import annotations

from typing import Any

from snapworker.config.models import Config

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a snapworker configuration file."""
    schema = Config.model_json_schema()
    return {
        "$schema": DIALECT,
        "title": "snapworker configuration",
        **{k: v for k, v in schema.items() if k != "title"},
    }
