"""Durations as the configuration writes them: ``12h``, ``2d``, ``1w``, ``1d12h``, ``2w3d``.

Units are ``w`` (week), ``d`` (day) and ``h`` (hour), each at most once and in that order,
each preceded by a non-negative integer. The total must be positive and at most 100 years
(36500 days). Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["MAX_DURATION", "format_duration", "parse_duration"]

MAX_DURATION = timedelta(days=36500)
"""The longest duration accepted (100 years of 365 days)."""

_DURATION_RE = re.compile(r"(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?")
_HINT = "a duration like '12h', '2d', '1w' or '1d12h' (units w, d, h, in that order)"
_MAX_HOURS = MAX_DURATION // timedelta(hours=1)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_duration(text: str) -> timedelta:
    """Parse ``text`` into a timedelta; ValueError with a readable message when it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"must be {_HINT} (got {type(text).__name__} {_shorten(repr(text))})")
    stripped = text.strip()
    match = _DURATION_RE.fullmatch(stripped)
    if not stripped or match is None:
        raise ValueError(f"must be {_HINT} (got {_shorten(text)!r})")
    groups = [g or "0" for g in match.groups()]
    if any(len(g.lstrip("0")) > 7 for g in groups):  # > 100 years; spares int() a huge string
        raise ValueError(f"must be at most 100 years (36500d) (got {_shorten(text)!r})")
    weeks, days, hours = (int(g) for g in groups)
    total_hours = (weeks * 7 + days) * 24 + hours  # exact int arithmetic: no overflow
    if total_hours <= 0:
        raise ValueError(f"must be longer than zero (got {_shorten(text)!r})")
    if total_hours > _MAX_HOURS:
        raise ValueError(f"must be at most 100 years (36500d) (got {_shorten(text)!r})")
    return timedelta(hours=total_hours)


def format_duration(td: timedelta) -> str:
    """The canonical text of ``td``, the inverse of :func:`parse_duration`.

    Whole weeks print as weeks (``2w``), anything else as days and hours (``10d``, ``12h``;
    36 hours print as ``1d12h``), so ``parse_duration(format_duration(td)) == td`` for every
    duration ``parse_duration`` returns. Other timedeltas still print, for reports and
    messages, never raising: zero as ``0h``, a remainder below the hour in ``m`` and ``s``
    (``1h30m``, ``45s``, ``0.5s``), a negative one with a leading ``-``; those texts are not
    accepted back by ``parse_duration``.
    """
    if td < timedelta(0):
        return "-" + format_duration(-td)
    hours, remainder = divmod(td, timedelta(hours=1))
    if hours == 0 and not remainder:
        return "0h"
    text = ""
    if hours and hours % (7 * 24) == 0:
        text = f"{hours // (7 * 24)}w"
    elif hours:
        days, hours = divmod(hours, 24)
        text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
    minutes, remainder = divmod(remainder, timedelta(minutes=1))
    if minutes:
        text += f"{minutes}m"
    if remainder:
        seconds = remainder.total_seconds()
        text += f"{seconds:g}s" if remainder.microseconds else f"{int(seconds)}s"
    return text
