"""Deterministic snapshot identifiers that always satisfy AWS's rules.

AWS accepts a snapshot identifier of 1..255 characters, letters, digits and hyphens only,
starting with a letter, with no trailing hyphen and no two consecutive hyphens. It stores it
lowercased.

The ids the worker makes are a pure function of what the snapshot was made for, so that a
retry or a rerun after a crash finds the snapshot it already made instead of making a second:

* a scheduled snapshot: ``sw-{policy}-{cluster}-{YYYYmmdd-HHMM}-{hash}`` (the fire time in
  UTC), the hash over ``(policy, cluster, "create", fire_time.isoformat())``;
* a copy of an automated snapshot: ``sw-{policy}-{source}-{hash}``, the source id sanitised
  (an automated id holds a colon: ``rs:prod-a-2026-01-01-03-00-00``), the hash over
  ``(policy, cluster, "copy", source_id)``.

The readable parts may be altered (sanitised, truncated) and may be ambiguous on their own
(policy ``a-b`` + cluster ``c`` reads like policy ``a`` + cluster ``b-c``); the hash over the
original, unaltered inputs keeps distinct inputs apart.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import UTC, datetime

__all__ = [
    "MAX_SNAPSHOT_ID_LENGTH",
    "POLICY_NAME_MAX_LENGTH",
    "POLICY_NAME_RE",
    "copy_snapshot_id",
    "create_snapshot_id",
    "is_valid_snapshot_id",
    "policy_name_problem",
    "sanitise",
    "short_hash",
]

MAX_SNAPSHOT_ID_LENGTH = 255
POLICY_NAME_MAX_LENGTH = 63
PREFIX = "sw"

_SNAPSHOT_ID_RE = re.compile(r"[A-Za-z](?:-?[A-Za-z0-9])*")

POLICY_NAME_RE = re.compile(r"\A(?=.{1,63}\Z)[A-Za-z](?:-?[A-Za-z0-9])*\Z", re.DOTALL)
"""A valid policy name: 1..63 letters, digits and hyphens; first a letter; no trailing hyphen
and no ``--``. Anchored, so ``match`` and ``fullmatch`` agree. Together with the id layout
this makes every generated snapshot id valid."""

_NOT_ID_CHARS = re.compile(r"[^a-z0-9-]")
_HYPHEN_RUNS = re.compile(r"-{2,}")


def is_valid_snapshot_id(s: object) -> bool:
    """Whether ``s`` is a snapshot identifier AWS accepts."""
    return (
        isinstance(s, str)
        and 1 <= len(s) <= MAX_SNAPSHOT_ID_LENGTH
        and _SNAPSHOT_ID_RE.fullmatch(s) is not None
    )


def policy_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid policy name, or None when it is."""
    if name == "":
        return "must not be empty"
    if len(name) > POLICY_NAME_MAX_LENGTH:
        return f"must be at most {POLICY_NAME_MAX_LENGTH} characters (got {len(name)})"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"may hold only letters, digits and hyphens (found {shown})"
    if not name[0].isalpha():
        return "must start with a letter"
    if name.endswith("-"):
        return "must not end with a hyphen"
    if "--" in name:
        return "must not contain two consecutive hyphens"
    if POLICY_NAME_RE.match(name) is None:  # pragma: no cover - the checks above are exhaustive
        return "is not a valid policy name"
    return None


def short_hash(*parts: str) -> str:
    """8 lowercase hex digits of SHA-256 over ``parts`` joined with NUL."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:8]


def sanitise(text: str) -> str:
    """Lowercase; every character outside ``[a-z0-9-]`` becomes a hyphen; runs of hyphens
    collapse to one; hyphens are stripped at both ends. May return ``""``."""
    text = _NOT_ID_CHARS.sub("-", text.lower())
    return _HYPHEN_RUNS.sub("-", text).strip("-")


@functools.lru_cache(maxsize=1024)
def _policy_problem(name: str) -> str | None:
    """``policy_name_problem``, memoised: a config has few policies, and the planner makes or
    checks an id per snapshot (the check was ~40% of the id's cost)."""
    return policy_name_problem(name)


def _check_policy(policy: str) -> None:
    problem = _policy_problem(policy) if isinstance(policy, str) else "must be a string"
    if problem is not None:
        raise ValueError(f"invalid policy name {policy!r}: {problem}")


def _assemble(head: str, middle: str, tail: str) -> str:
    """``head-middle-tail``, the middle cut to fit 255 characters (never the head or the tail).

    ``head`` and ``tail`` are valid id fragments; ``middle`` is sanitised (no leading, trailing
    or doubled hyphen) and may be empty, in which case it is left out.
    """
    room = MAX_SNAPSHOT_ID_LENGTH - len(head) - len(tail) - 2
    middle = middle[: max(room, 0)].rstrip("-")
    parts = [head, middle, tail] if middle else [head, tail]
    result = "-".join(parts).lower()
    assert is_valid_snapshot_id(result), result
    return result


def create_snapshot_id(policy: str, cluster: str, fire_time: datetime) -> str:
    """The id of the snapshot ``policy`` takes of ``cluster`` for the schedule's ``fire_time``.

    ``fire_time`` must be timezone-aware; it is converted to UTC.
    """
    _check_policy(policy)
    if fire_time.tzinfo is None or fire_time.utcoffset() is None:
        raise ValueError("fire_time must be timezone-aware")
    fire = fire_time.astimezone(UTC)
    digest = short_hash(policy, cluster, "create", fire.isoformat())
    tail = f"{fire:%Y%m%d-%H%M}-{digest}"
    return _assemble(f"{PREFIX}-{policy}", sanitise(cluster), tail)


def copy_snapshot_id(policy: str, cluster: str, source_id: str) -> str:
    """The id of the manual copy ``policy`` makes of the automated snapshot ``source_id``."""
    _check_policy(policy)
    digest = short_hash(policy, cluster, "copy", source_id)
    return _assemble(f"{PREFIX}-{policy}", sanitise(source_id), digest)
