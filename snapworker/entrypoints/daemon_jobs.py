"""The daemon's scheduling facts: the jobs' defaults, the cron trigger that fires exactly
when the planner says a schedule is due, which policies an event's cluster concerns, and
how long a graceful stop can take (the bound the daemon logs at start-up, which
``terminationGracePeriodSeconds`` in ``config/k8s-deployment.yaml`` must exceed).
"""

from __future__ import annotations

import fnmatch
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.base import BaseTrigger

from snapworker.core.schedule import next_fire

if TYPE_CHECKING:
    from snapworker.config import Config

MISFIRE_GRACE = timedelta(minutes=15)
JOB_DEFAULTS: dict[str, Any] = {
    "coalesce": True,
    "max_instances": 1,
    "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
}
SQS_WAIT_SECONDS = 5
"""SQS long-poll wait: short enough that a stop never waits long for the poller."""
BOTOCORE_MAX_BACKOFF = 20.0
"""botocore's ``standard`` retry mode sleeps at most this long between attempts."""
PRUNE_EVERY = timedelta(days=1)


class CronFireTrigger(BaseTrigger):
    """Fires at the fire times of a cron schedule in a time zone, exactly as the planner
    computes them (``core.schedule.next_fire``, croniter: 0 = Sunday in day-of-week).

    APScheduler 3's own ``CronTrigger.from_crontab`` numbers days of the week from Monday =
    0, so "0 5 * * 0" would fire on Mondays there and on Sundays in the planner."""

    def __init__(self, schedule: str, timezone: str) -> None:
        self.schedule = schedule
        self.timezone = timezone

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            return next_fire(self.schedule, self.timezone, previous_fire_time)
        # A fire time equal to now still counts.
        return next_fire(self.schedule, self.timezone, now - timedelta(microseconds=1))

    def __str__(self) -> str:
        return f"cron[{self.schedule} {self.timezone}]"

    def __repr__(self) -> str:
        return f"<CronFireTrigger ({self.schedule!r}, timezone={self.timezone!r})>"


CALLS_PER_ACTION = 2
"""An action in flight makes at most two AWS calls once started: a copy then its CreateTags,
or a delete's guard re-read then the delete."""
STATE_DB_SLACK = 15.0
"""The journal writes after the call (each waits at most the SQLite busy timeout, 5 s)."""


def stop_bound_seconds(config: Config) -> float:
    """The longest a graceful stop can take: the action in flight, i.e. its AWS calls each
    with botocore's own attempts (each up to connect + read timeout, with botocore's backoff
    between them), its journal writes, plus the SQS long poll. snapworker's own retry waits
    are cut short by a stop, so they do not count."""
    aws = config.aws
    per_attempt = aws.connect_timeout_seconds + aws.read_timeout_seconds
    call = aws.max_attempts * per_attempt + (aws.max_attempts - 1) * BOTOCORE_MAX_BACKOFF
    sqs = SQS_WAIT_SECONDS if config.daemon.sqs_queue_url else 0
    return CALLS_PER_ACTION * call + STATE_DB_SLACK + sqs


def policies_for_cluster(config: Config, cluster: str | None) -> list[str]:
    """The policies whose ``select.clusters`` patterns match ``cluster`` (None: all).
    Tags are not known from a message; the tick itself checks them."""
    if cluster is None:
        return [p.name for p in config.policies]
    return [
        p.name
        for p in config.policies
        if any(fnmatch.fnmatchcase(cluster, pat) for pat in p.select.clusters)
    ]
