"""Cron fire times, evaluated in a policy's time zone (pure: the clock comes in as ``now``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo


def croniter(schedule: str, start: datetime) -> Any:
    """croniter, imported on first use: a tick whose policies have no schedule never pays
    for it (start-up: ``bench/startup.py``)."""
    from croniter import croniter as _croniter

    return _croniter(schedule, start)


def latest_fire(schedule: str, timezone: str, now: datetime) -> datetime:
    """The most recent fire time of ``schedule`` at or before ``now``, in UTC."""
    local_now = now.astimezone(ZoneInfo(timezone))
    prev: datetime = croniter(schedule, local_now).get_prev(datetime)
    # croniter's get_prev is strictly before its start; a fire time equal to now counts.
    nxt: datetime = croniter(schedule, prev).get_next(datetime)
    if nxt <= local_now:
        prev = nxt
    return prev.astimezone(UTC)


def next_fire(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first fire time of ``schedule`` strictly after ``after``, in UTC."""
    local = after.astimezone(ZoneInfo(timezone))
    nxt: datetime = croniter(schedule, local).get_next(datetime)
    return nxt.astimezone(UTC)
