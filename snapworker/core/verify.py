"""Restore verification, the pure part: which drills are due, what they restore, what the
scratch cluster is called, and whether a check's result meets its expectation.

A backup nobody restored is a hope. A policy's ``verify`` block schedules a drill per cluster:
restore the policy's newest owned snapshot (by data time, ``available``) into a short-lived
scratch cluster, connect with temporary credentials, run the checks, delete the scratch
cluster. The I/O lives in ``snapworker.service.drills``; this module decides, like creation:

* a drill is due at once for a cluster never verified, then once per fire time of the
  verify schedule (:func:`snapworker.core.schedule.latest_fire`);
* only a drill that *ended* (passed, failed, or errored: restore, credentials, connection)
  counts for its fire time; one a crash cut short (still ``pending`` or ``interrupted``) is
  redone;
* the scratch cluster's id is a function of (policy, cluster, fire time), so a rerun after
  a crash names the same cluster and the cleanup finds it.

Pure: no I/O, no clock (``now`` comes in).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from snapworker.core.ids import short_hash
from snapworker.core.model import (
    TAG_CLUSTER,
    TAG_FIRE_TIME,
    TAG_POLICY,
    TAG_SCRATCH,
    Action,
    Cluster,
    Note,
    VerificationRecord,
)
from snapworker.core.ownership import parse_utc
from snapworker.core.schedule import latest_fire

__all__ = [
    "ENDED",
    "MAX_CLUSTER_ID_LENGTH",
    "SCRATCH_PREFIX",
    "CheckResult",
    "OwnedSnap",
    "due_verifications",
    "evaluate_check",
    "is_scratch",
    "is_valid_cluster_id",
    "json_value",
    "scratch_cluster_id",
    "scratch_owner",
    "scratch_tags",
]

SCRATCH_PREFIX = "swv"
TAG_SNAPSHOT = "snapworker:snapshot"  # scratch clusters: the snapshot the drill restored
MAX_CLUSTER_ID_LENGTH = 63
ENDED = frozenset({"passed", "failed", "error"})
"""Drill outcomes that count for their fire time (a crash-cut drill is redone)."""


def is_valid_cluster_id(s: str) -> bool:
    """AWS's ClusterIdentifier rules: 1..63 lowercase letters, digits and hyphens; first a
    letter; no trailing hyphen; no two consecutive hyphens."""
    return (
        1 <= len(s) <= MAX_CLUSTER_ID_LENGTH
        and s[0].isascii()
        and s[0].isalpha()
        and s[0].islower()
        and all(
            c.isascii() and (c.isdigit() or c == "-" or (c.isalpha() and c.islower())) for c in s
        )
        and not s.endswith("-")
        and "--" not in s
    )


def scratch_cluster_id(policy: str, cluster: str, fire_time: datetime) -> str:
    """``swv-<policy>-<hash>``: the scratch cluster of ``policy``'s drill of ``cluster`` for
    ``fire_time``. The hash (over the unaltered inputs) keeps clusters and fire times apart;
    the policy part is lowercased and cut so the id fits 63 characters. Policy names are
    letters, digits and single hyphens, so the result is always a valid cluster id."""
    if fire_time.tzinfo is None or fire_time.utcoffset() is None:
        raise ValueError("fire_time must be timezone-aware")
    digest = short_hash(policy, cluster, "verify", fire_time.astimezone(UTC).isoformat())
    room = MAX_CLUSTER_ID_LENGTH - len(SCRATCH_PREFIX) - len(digest) - 2
    middle = policy.lower()[:room].rstrip("-")
    result = f"{SCRATCH_PREFIX}-{middle}-{digest}" if middle else f"{SCRATCH_PREFIX}-{digest}"
    if not is_valid_cluster_id(result):
        raise ValueError(f"cannot make a scratch cluster id from policy {policy!r}")
    return result


def scratch_tags(policy: str, cluster: str, fire_time: datetime, snapshot: str) -> dict[str, str]:
    """The tags that mark a scratch cluster as the worker's, and prove it (see
    :func:`scratch_owner`)."""
    return {
        TAG_SCRATCH: "true",
        TAG_POLICY: policy,
        TAG_CLUSTER: cluster,
        TAG_FIRE_TIME: fire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        TAG_SNAPSHOT: snapshot,
    }


def scratch_owner(cluster: Cluster) -> str | None:
    """The policy whose drill made ``cluster``, when its tags prove it: ``snapworker:scratch``
    is ``true`` *and* the id is exactly the one :func:`scratch_cluster_id` makes from the
    tagged policy, source cluster and fire time. A tag alone never makes a cluster deletable
    (someone could tag a production cluster by mistake)."""
    tags = cluster.tags
    if tags.get(TAG_SCRATCH) != "true":
        return None
    policy, source = tags.get(TAG_POLICY), tags.get(TAG_CLUSTER)
    fire = parse_utc(tags.get(TAG_FIRE_TIME))
    if not policy or not source or fire is None:
        return None
    try:
        expected = scratch_cluster_id(policy, source, fire)
    except ValueError:
        return None
    return policy if expected == cluster.id else None


def is_scratch(cluster: Cluster, recorded: Iterable[str] = ()) -> bool:
    """A scratch cluster of a drill: tagged ``snapworker:scratch``, or recorded as one in the
    state DB (the tag is written right after the restore; a crash may come between)."""
    return TAG_SCRATCH in cluster.tags or cluster.id in set(recorded)


@dataclass(frozen=True)
class OwnedSnap:
    """An owned snapshot as the drill planner needs it."""

    id: str
    cluster: str
    data_time: datetime
    available: bool


def _last_ended(records: Sequence[VerificationRecord]) -> dict[tuple[str, str], datetime]:
    last: dict[tuple[str, str], datetime] = {}
    for r in records:
        if r.status not in ENDED:
            continue
        key = (r.policy, r.cluster)
        if key not in last or last[key] < r.fire_time:
            last[key] = r.fire_time
    return last


def due_verifications(
    policy: str,
    schedule: str,
    timezone: str,
    owned: Mapping[str, Sequence[OwnedSnap]],
    records: Sequence[VerificationRecord],
    now: datetime,
) -> tuple[list[Action], list[Note]]:
    """The ``verify`` actions due now for ``policy``, one per cluster it owns snapshots of
    (a cluster that was deleted still has backups worth proving), with notes for clusters
    whose drill is due but that have no ``available`` snapshot to restore."""
    fire = latest_fire(schedule, timezone, now)
    last = _last_ended(records)
    actions: list[Action] = []
    notes: list[Note] = []
    for cluster in sorted(owned):
        previous = last.get((policy, cluster))
        if previous is not None and previous >= fire:
            continue
        candidates = [s for s in owned[cluster] if s.available]
        if not candidates:
            notes.append(
                Note(
                    policy,
                    cluster,
                    f"restore drill due (fire time {fire:%Y-%m-%d %H:%M}Z) but no owned "
                    "snapshot is available to restore",
                    level="warning",
                )
            )
            continue
        newest = max(candidates, key=lambda s: (s.data_time, s.id))
        since = (
            "never verified"
            if previous is None
            else f"last drill was for {previous:%Y-%m-%d %H:%M}Z"
        )
        reason = (
            f"restore drill due: verify schedule '{schedule}' ({timezone}) fired at "
            f"{fire:%Y-%m-%d %H:%M}Z, {since}; newest owned snapshot, data of "
            f"{newest.data_time:%Y-%m-%d %H:%M}Z, into scratch cluster "
            f"{scratch_cluster_id(policy, cluster, fire)}"
        )
        actions.append(
            Action(
                policy,
                cluster,
                "verify",
                newest.id,
                reason,
                data_time=newest.data_time,
                fire_time=fire,
            )
        )
    return actions, notes


# ------------------------------------------------------------------------- check results


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome, safe to store and print (no credentials, values shortened)."""

    name: str
    ok: bool
    expected: str
    observed: Any
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "expected": self.expected,
            "observed": self.observed,
            "detail": self.detail,
        }


_MAX_TEXT = 200


def json_value(value: Any) -> Any:
    """A database value as plain JSON (``Decimal`` -> int or string, long text cut)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return str(value)
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    return None


def _same(observed: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(observed, bool):
        return isinstance(observed, bool) and isinstance(expected, bool) and observed == expected
    if expected is None or observed is None:
        return observed is None and expected is None
    a, b = _number(observed), _number(expected)
    if (
        a is not None
        and b is not None
        and not (isinstance(observed, str) and isinstance(expected, str))
    ):
        return a == b
    return str(observed) == str(expected)


def evaluate_check(
    name: str,
    kind: str,
    target: Any,
    rows: Sequence[Sequence[Any]],
    figures: Mapping[str, Any] | None = None,
) -> CheckResult:
    """Judge the first value of the first row of ``rows`` against the expectation.

    ``kind`` is ``min`` (a number >= ``target``), ``equals`` (equal to ``target``; numbers
    compare as numbers: 3 == 3.0 == Decimal('3')) or ``same_as_snapshot`` (equal to the
    figure of the same name in ``figures``, read on the live cluster before the snapshot).
    """
    if not rows or not rows[0]:
        return CheckResult(name, False, _expected(kind, target, figures, name), None, "no rows")
    observed = rows[0][0]
    shown = json_value(observed)
    if kind == "min":
        number = _number(observed)
        if number is None:
            return CheckResult(name, False, f">= {target}", shown, "not a number")
        ok = number >= Decimal(repr(target) if isinstance(target, float) else target)
        return CheckResult(name, ok, f">= {target}", shown, "" if ok else "below the minimum")
    if kind == "equals":
        ok = _same(observed, target)
        return CheckResult(name, ok, f"= {target!r}", shown, "" if ok else "not equal")
    if kind == "same_as_snapshot":
        if figures is None or name not in figures:
            return CheckResult(
                name,
                False,
                "same as at snapshot time",
                shown,
                "no figure was recorded for this snapshot",
            )
        figure = figures[name]
        ok = _same(shown, figure)
        return CheckResult(
            name,
            ok,
            f"= {figure!r} (recorded at snapshot time)",
            shown,
            "" if ok else "differs from the figure recorded at snapshot time",
        )
    raise ValueError(f"unknown expectation {kind!r}")


def _expected(kind: str, target: Any, figures: Mapping[str, Any] | None, name: str) -> str:
    if kind == "min":
        return f">= {target}"
    if kind == "equals":
        return f"= {target!r}"
    figure = (figures or {}).get(name)
    return f"= {figure!r} (recorded at snapshot time)"
