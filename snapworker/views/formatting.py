"""What the reports share: how they write a point in time, so that the plan, the
explanation and the status read alike (and a script parsing one parses them all), and how
they write a Markdown table.

Two forms of a time, both in UTC whatever the input's zone: :func:`minute` for people (tables and
Markdown, to the minute) and :func:`iso` for scripts (JSON, to the second, ``Z`` suffix).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

_MINUTE = "%Y-%m-%d %H:%M"
_ISO = "%Y-%m-%dT%H:%M:%SZ"


def minute(t: datetime | None, *, zone: bool = False) -> str:
    """``2026-11-27 03:00`` (``2026-11-27 03:00 UTC`` with ``zone``); ``-`` for no time."""
    if t is None:
        return "-"
    text = t.astimezone(UTC).strftime(_MINUTE)
    return f"{text} UTC" if zone else text


def iso(t: datetime | None) -> str | None:
    """``2026-11-27T03:00:00Z``, or None (JSON ``null``) for no time."""
    return t.astimezone(UTC).strftime(_ISO) if t else None


def md_cell(text: str) -> str:
    """Text made safe for one Markdown table cell (or line): no pipe, no line break."""
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown pipe table, one line per row."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return out
