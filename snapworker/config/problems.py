"""Problems with a configuration file, and how a pydantic error becomes one.

A :class:`Problem` names the file, the line, the policy and the field (as the operator wrote
them) and says what is wrong; :class:`ConfigError` carries every problem found. Pydantic
reports an error at a location such as ``("policies", 0, "retention", "keep_last")``:
:func:`problems_of` finds that location's line in the YAML node tree, the policy's name in the
raw data, and words the message without pydantic's own vocabulary.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from snapworker.config.checks import _policy_name_duplicates, _show
from snapworker.config.models import Config, _target_name_duplicates
from snapworker.errors import UsageError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file."""

    file: str
    line: int | None
    policy: str | None
    field: str
    message: str
    target: str | None = None
    """The target (an entry of ``targets:``) the problem is in, by the name written."""

    def __str__(self) -> str:
        parts = [self.file if self.line is None else f"{self.file}:{self.line}"]
        if self.policy is not None:
            parts.append(f"policy {self.policy!r}")
        if self.target is not None:
            parts.append(f"target {self.target!r}")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


Finding = tuple[tuple[int | str, ...], str]
"""Something found about a loaded configuration (see :mod:`.risks`): where, spelled as
pydantic spells a location (``("policies", 0, "share", "accounts", 1)``), and what."""


class ConfigError(UsageError):
    """A configuration that cannot be used; ``problems`` lists everything found wrong."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def _fail(file: str, message: str, line: int | None = None) -> NoReturn:
    raise ConfigError([Problem(file, line, None, "", message)])


_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "timedelta_type": "must be a duration like '2d'",
}


def _unwrap(annotation: Any) -> Any:
    """The model/list/dict type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _step(current: Any, part: int | str) -> Any:
    """The type one step below ``current`` (unwrapped) at ``part`` of a location, or None."""
    origin = typing.get_origin(current)
    if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
        field = current.model_fields.get(part)
        return None if field is None else field.annotation
    if origin is list and isinstance(part, int):
        return typing.get_args(current)[0]
    if origin is dict and isinstance(part, str):
        return typing.get_args(current)[1]
    return None


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that the error location ``loc`` points inside, if any."""
    current: Any = Config
    for part in loc:
        current = _step(_unwrap(current), part)
        if current is None:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _union_tag(loc: Sequence[int | str]) -> int | None:
    """Where in ``loc`` pydantic put a union member's tag, if it did: an error in a field
    typed ``int | float`` is reported twice, at ``...min.int`` and ``...min.float``. The
    operator wrote ``min``; the tag is pydantic's."""
    current: Any = Config
    for index, part in enumerate(loc):
        current = _unwrap(current)
        if typing.get_origin(current) in (typing.Union, types.UnionType):
            return index if isinstance(part, str) else None
        current = _step(current, part)
        if current is None:
            return None
    return None


def _unknown_key_message(loc: Sequence[int | str]) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    allowed = list(model.model_fields)
    guess = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if guess:
        return f"unknown key {key!r} (did you mean {guess[0]!r}?)"
    return f"unknown key {key!r} (allowed: {', '.join(allowed)})"


def _message(error: Any) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden" and loc:
        return _unknown_key_message(loc)
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]} (got {_show(error.get('input'))})"
    if kind == "literal_error" and "expected" in ctx:
        return f"must be one of {ctx['expected']} (got {_show(error.get('input'))})"
    if kind == "too_short" and "min_length" in ctx:
        n = ctx["min_length"]
        return f"must have at least {n} item{'' if n == 1 else 's'}"
    return str(error["msg"])


_MISMATCH_NOUNS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true/false",
    "bool_parsing": "true/false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
"""What each member of a union expected, when the value had none of their types."""
_NOUN_ORDER = ("a number", "an integer", "a string", "true/false", "a list", "a mapping")


def _union_message(errors: Sequence[Any]) -> str:
    """One message for the errors of every member of a union at one place: a member that
    took the value's type and refused the value says why; else "must be X, Y or Z"."""
    for error in errors:
        if error["type"] not in _MISMATCH_NOUNS:
            return _message(error)
    nouns = {_MISMATCH_NOUNS[e["type"]] for e in errors}
    if "a number" in nouns:
        nouns.discard("an integer")
    ordered = [n for n in _NOUN_ORDER if n in nouns]
    expected = ordered[0] if len(ordered) == 1 else f"{', '.join(ordered[:-1])} or {ordered[-1]}"
    return f"must be {expected} (got {_show(errors[0].get('input'))})"


class _Locator:
    """Finds the YAML line of an error location (mapping lookups indexed once, not rescanned)."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root
        self._keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    def _entries(self, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        entries = self._keys.get(id(node))
        if entries is None:
            entries = {key.value: (key, value) for key, value in node.value}
            self._keys[id(node)] = entries
        return entries

    def line(self, loc: Sequence[int | str], at_key: bool) -> int:
        """1-based line of the node at ``loc`` (its key's line when ``at_key``); when the path
        does not exist (a missing key), the line of the deepest node that does."""
        node = self.root
        key_node: yaml.Node | None = None
        for part in loc:
            if part == "[key]" and key_node is not None:
                node, key_node = key_node, None
                break
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                entry = self._entries(node).get(part)
                if entry is None:
                    break
                key_node, node = entry
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                node, key_node = node.value[part], None
            else:
                break
        else:
            if at_key and key_node is not None:
                return key_node.start_mark.line + 1
        return node.start_mark.line + 1


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _dotted(loc: Sequence[int | str]) -> str:
    """``policies[0].select.tags['a.b']``: indexes in brackets, odd keys quoted."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue  # an error about a mapping's key: the message says so
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part) is None:
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out


def _problem(
    file: str, where: _Locator, data: Any, loc: tuple[int | str, ...], message: str, at_key: bool
) -> Problem:
    line = where.line(loc, at_key)
    if len(loc) >= 2 and loc[0] in ("policies", "targets") and isinstance(loc[1], int):
        name = _raw_name(data, str(loc[0]), loc[1])
        if name is not None:
            if loc[0] == "policies":
                return Problem(file, line, name, _dotted(loc[2:]), message)
            return Problem(file, line, None, _dotted(loc[2:]), message, target=name)
    return Problem(file, line, None, _dotted(loc), message)


def _raw_name(data: Any, key: str, index: int) -> str | None:
    """The ``name`` written in entry ``index`` of the list ``key`` (a policy, a target)."""
    entries = data.get(key) if isinstance(data, dict) else None
    if isinstance(entries, list) and 0 <= index < len(entries):
        entry = entries[index]
        if isinstance(entry, dict):
            name = entry.get("name")
            if isinstance(name, str) and name.strip():
                return name
    return None


def _raw_names(data: Any, key: str) -> list[tuple[int, str]]:
    entries = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    return [
        (i, e["name"])
        for i, e in enumerate(entries)
        if isinstance(e, dict) and isinstance(e.get("name"), str)
    ]


def _problems(exc: ValidationError, root: yaml.Node, data: Any, file: str) -> list[Problem]:
    where = _Locator(root)
    problems: list[Problem] = []
    reported: set[tuple[int | str, ...]] = set()
    unions: dict[tuple[int | str, ...], list[Any]] = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == "duplicate":
            reported.add(loc)
            for suffix, message in error["ctx"]["items"]:
                problems.append(_problem(file, where, data, loc + tuple(suffix), message, False))
            continue
        tag = _union_tag(loc)
        if tag is not None:
            unions.setdefault(loc[:tag] + loc[tag + 1 :], []).append(error)
            continue
        at_key = error["type"] == "extra_forbidden"
        problems.append(_problem(file, where, data, loc, _message(error), at_key))
    for loc, errors in unions.items():
        problems.append(_problem(file, where, data, loc, _union_message(errors), False))
    # Pydantic checks names only once every entry is valid: report them now anyway.
    for key, duplicates in (
        ("policies", _policy_name_duplicates),
        ("targets", _target_name_duplicates),
    ):
        if (key,) not in reported:
            for suffix, message in duplicates(_raw_names(data, key)):
                problems.append(_problem(file, where, data, (key, *suffix), message, False))
    problems.sort(key=lambda p: p.line or 0)
    return problems
