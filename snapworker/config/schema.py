"""The configuration's JSON Schema (``snapworker schema``), from the pydantic models.

What an editor needs to complete keys and flag mistakes as they are typed: every key with its
type, default and description (the fields' docstrings), and ``additionalProperties: false``
wherever the models refuse unknown keys (all of them). Ranges, cron expressions, account ids
and the like are checked by ``snapworker validate``, which says more than a schema can.

The descriptions are read from the models' source here, when the schema is asked for, not
by pydantic's ``use_attribute_docstrings`` (that parses the source at every import of the
models: ~30 ms of every ``run``'s start-up).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from typing import Any

from pydantic import BaseModel

from snapworker.config import models
from snapworker.config.models import Config

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a snapworker configuration file."""
    schema = Config.model_json_schema()
    defs = schema.get("$defs", {})
    for cls in vars(models).values():
        if (
            isinstance(cls, type)
            and issubclass(cls, BaseModel)
            and cls.__module__ == models.__name__
        ):
            target = schema if cls is Config else defs.get(cls.__name__)
            if target is not None:
                _describe(target.get("properties", {}), _field_docs(cls))
    return {
        "$schema": DIALECT,
        "title": "snapworker configuration",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def _describe(properties: dict[str, Any], docs: dict[str, str]) -> None:
    for name, doc in docs.items():
        prop = properties.get(name)
        if prop is not None and "description" not in prop:
            prop["description"] = doc


def _field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}``: the string literal right below each annotated field."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a frozen build): no descriptions
        return {}
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.ClassDef):
        return {}
    out: dict[str, str] = {}
    for stmt, after in itertools.pairwise(node.body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            out[stmt.target.id] = inspect.cleandoc(after.value.value)
    return out
