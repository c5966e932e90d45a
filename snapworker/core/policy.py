"""A policy as the core reads it: plain frozen data, with no tie to how it was written.

The configuration (``snapworker.config``) validates the YAML into pydantic models and hands
the core this view of each policy (``config.Policy.core``); the planner and the explanation
read nothing else. It holds only what the core decides with: which clusters, when to make
snapshots, whom to share with, what to keep, the deletion cap, the hold tag and when restore
drills are due. How a drill connects and what it checks is the service's business, not the
planner's, so it is not here.

The attribute names are the configuration's own (``policy.share.unshare_after``,
``policy.retention.keep_last``), so a reason or a note that names a setting names it as the
operator wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta

__all__ = ["CreateSpec", "Limits", "Policy", "Retention", "Select", "ShareSpec", "VerifySpec"]


@dataclass(frozen=True, slots=True)
class Select:
    """Which clusters the policy acts on: any glob over the id, and every tag."""

    clusters: tuple[str, ...] = ("*",)
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class CreateSpec:
    """A manual snapshot of each selected cluster at each fire time of a 5-field cron."""

    schedule: str
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class ShareSpec:
    """The accounts the policy's snapshots are shared with, and for how long."""

    accounts: tuple[str, ...] = ()
    unshare_after: timedelta | None = None
    revoke_unlisted: bool = False


@dataclass(frozen=True, slots=True)
class Retention:
    """What to keep; a snapshot is kept when any rule keeps it. No rule: nothing expires.
    ``fail_safe_days`` is AWS's own expiry of what the policy makes, not a rule."""

    max_age_days: int | None = None
    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: timedelta | None = None
    fail_safe_days: int | None = None

    @property
    def has_rules(self) -> bool:
        """Whether any rule is set (with none, nothing expires); ``fail_safe_days`` is not one."""
        return any(
            getattr(self, f.name) is not None for f in fields(self) if f.name != "fail_safe_days"
        )


@dataclass(frozen=True, slots=True)
class Limits:
    max_deletes_per_run: int = 20
    """Blast radius: deletions one policy may make in one run."""


@dataclass(frozen=True, slots=True)
class VerifySpec:
    """When restore drills are due (how they run is the service's: ``service.drills``)."""

    schedule: str
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy, as the planner reads it."""

    name: str
    select: Select = Select()
    create: CreateSpec | None = None
    copy_automated: bool = False
    share: ShareSpec = ShareSpec()
    retention: Retention = Retention()
    limits: Limits = Limits()
    hold_tag: str = "snapworker:hold"
    verify: VerifySpec | None = None
    formerly: tuple[str, ...] = ()
    """Former names of this policy: it owns their snapshots (see ``core.ownership``)."""

    @property
    def timezone(self) -> str:
        """The policy's time zone: ``create.timezone``, else UTC."""
        return self.create.timezone if self.create is not None else "UTC"
