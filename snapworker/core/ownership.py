"""Which snapshots the worker owns, and what it knows of each.

Ownership decides what the worker may ever change, so it is strict:

1. An automated snapshot is never owned.
2. A snapshot of another AWS account (shared with this one) is never owned.
3. **Tags are the source of truth.** A manual snapshot is owned by policy P when it carries
   ``snapworker:policy = P`` and ``snapworker:cluster`` equal to its cluster, *and* its id is
   exactly the id the worker would have generated from those tags (``ids.create_snapshot_id``
   from ``snapworker:fire-time``, or ``ids.copy_snapshot_id`` from ``snapworker:source``).
   A snapshot that merely looks like the worker's (same name pattern, no tags), or whose tags
   do not match its id, is not owned. Tags live with the snapshot, so they survive the loss
   of the state DB: after such a loss the worker adopts what its tags prove it owns.
4. Without the tag, the state DB can prove ownership of a snapshot the worker made itself:
   a live owned record, or a pending journal entry for the create/copy that made it (the
   crash window between CopyClusterSnapshot and CreateTags). Such a snapshot is re-tagged.
   If the tags name a *different* owner than the state DB, the tags win.
5. **Former names.** A policy that says ``formerly: [OLD]`` owns OLD's snapshots (tags, state
   DB records and journal entries naming OLD, each proven as above), and only through that
   key: ``renames`` maps each former name to the policy that now owns it. Their ids stay as
   they were made (from OLD), so a snapshot tagged with the new name is also owned when its
   id is the one OLD would have made; the tags still naming OLD are proven as ``former``
   (the planner rewrites them to the new name, a journalled ``tag`` action).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from snapworker.core import ids
from snapworker.core.model import (
    TAG_CLUSTER,
    TAG_FIRE_TIME,
    TAG_KIND,
    TAG_POLICY,
    TAG_SOURCE,
    TAG_SOURCE_TIME,
    OwnedRecord,
    PendingEntry,
    Snapshot,
    State,
)


@dataclass(frozen=True)
class Ownership:
    """An owned snapshot: the record, and whether its tags already say so."""

    record: OwnedRecord
    tagged: bool
    proof: str  # "tags", "state", "journal"


def parse_utc(text: str | None) -> datetime | None:
    """An ISO 8601 time from a tag, as aware UTC; None when absent or unreadable."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def format_utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ownership_tags(rec: OwnedRecord) -> dict[str, str]:
    """The tags that mark ``rec`` as the worker's (written at create, or right after a copy)."""
    tags = {TAG_POLICY: rec.policy, TAG_CLUSTER: rec.cluster, TAG_KIND: rec.made_for}
    if rec.made_for == "copy":
        tags[TAG_SOURCE] = rec.source_id or ""
        if rec.data_time is not None:
            tags[TAG_SOURCE_TIME] = format_utc(rec.data_time)
    elif rec.fire_time is not None:
        tags[TAG_FIRE_TIME] = format_utc(rec.fire_time)
    return tags


# The id checks below are pure functions of the tags; a tick runs them over every owned
# snapshot more than once (adoption, then planning, then the delete guards), and the daemon
# once per tick: memoised, so only the first pass pays for the hashing (bounded memory).
_copy_id = functools.lru_cache(maxsize=1 << 17)(ids.copy_snapshot_id)
_create_id = functools.lru_cache(maxsize=1 << 16)(ids.create_snapshot_id)


Renames = Mapping[str, str]
"""Former policy name -> the policy that lists it in ``formerly`` (see rule 5 above)."""

_NO_RENAMES: Renames = {}


def _formers(renames: Renames, policy: str) -> list[str]:
    """The former names of ``policy`` (few: a scan of a small mapping)."""
    return [old for old, new in renames.items() if new == policy] if renames else []


def _from_tags(snap: Snapshot, db: OwnedRecord | None, renames: Renames) -> OwnedRecord | None:
    tag = snap.tags.get
    policy = tag(TAG_POLICY)
    cluster = snap.cluster
    if not policy or tag(TAG_CLUSTER) != cluster:
        return None
    kind = tag(TAG_KIND)
    # A state DB record of this very id, for the same policy, cluster and source (or fire
    # time), proves the id is one the worker generated: it records only ids it made, or
    # adopted after this same check. So the hash is recomputed only for what the DB does
    # not know (after a loss of the state DB, or a snapshot someone else tagged).
    known = db if db is not None and db.policy == policy and db.cluster == cluster else None
    if kind == "copy":
        source = tag(TAG_SOURCE)
        if not source:
            return None
        if known is not None and known.made_for == "copy" and known.source_id == source:
            if known.deleted_at is None and known.data_time is not None:
                # The state DB's record says what the tags would, but for the source time:
                # should the tag and the record disagree (a tag edited by hand), the later
                # of the two decides retention, which errs towards keeping.
                tagged = parse_utc(tag(TAG_SOURCE_TIME))
                if tagged is None or tagged <= known.data_time:
                    return known
                return dataclasses.replace(known, data_time=tagged)
        elif _copy_id(policy, cluster, source) != snap.id and all(
            _copy_id(old, cluster, source) != snap.id for old in _formers(renames, policy)
        ):
            return None
        data_time = parse_utc(tag(TAG_SOURCE_TIME))
        if data_time is None and db is not None and db.policy == policy:
            data_time = db.data_time
        # Tag and record both gone: the copy's own time errs towards keeping.
        return OwnedRecord(
            snap.id, policy, cluster, "copy", data_time or snap.create_time, source_id=source
        )
    if kind == "create":
        fire = parse_utc(tag(TAG_FIRE_TIME))
        if fire is None:
            return None
        recorded = known is not None and known.made_for == "create" and known.fire_time == fire
        if (
            not recorded
            and _create_id(policy, cluster, fire) != snap.id
            and all(_create_id(old, cluster, fire) != snap.id for old in _formers(renames, policy))
        ):
            return None
        return OwnedRecord(snap.id, policy, cluster, "create", snap.create_time, fire_time=fire)
    return None


def owner_of(
    snap: Snapshot,
    state: State,
    pending_made: Mapping[str, PendingEntry],
    account: str | None,
    renames: Renames = _NO_RENAMES,
) -> Ownership | None:
    """Who owns ``snap`` (see the module docstring), or None: not the worker's."""
    found = owned_record(snap, state.owned.get(snap.id), pending_made, account, renames)
    if found is None:
        return None
    rec, proof = found
    return Ownership(rec, proof == "tags", proof)


def owned_record(
    snap: Snapshot,
    db: OwnedRecord | None,
    pending_made: Mapping[str, PendingEntry],
    account: str | None,
    renames: Renames = _NO_RENAMES,
) -> tuple[OwnedRecord, str] | None:
    """:func:`owner_of` as (record, proof) (the planner's per-snapshot form: no
    :class:`Ownership` built); ``db``: the state DB's record of ``snap.id``, if any. A
    snapshot of a former name comes back with the record under its new policy; proven by
    tags that still name the former one, its proof is ``former``."""
    found = _owned_record(snap, db, pending_made, account, renames)
    if found is None or not renames:
        return found
    rec, proof = found
    new = renames.get(rec.policy)
    if new is None:
        return found
    return dataclasses.replace(rec, policy=new), "former" if proof == "tags" else proof


def _owned_record(
    snap: Snapshot,
    db: OwnedRecord | None,
    pending_made: Mapping[str, PendingEntry],
    account: str | None,
    renames: Renames,
) -> tuple[OwnedRecord, str] | None:
    if snap.type != "manual":
        return None
    owner = snap.owner_account
    if owner is not None and account is not None and owner != account:
        return None  # another account's snapshot (None: not reported, this account's)
    if TAG_POLICY in snap.tags:
        rec = _from_tags(snap, db, renames)
        return (rec, "tags") if rec is not None else None
    if db is not None and db.deleted_at is None and db.cluster == snap.cluster:
        return db, "state"
    entry = pending_made.get(snap.id)
    if entry is not None and entry.cluster == snap.cluster and entry.kind in ("create", "copy"):
        rec = OwnedRecord(
            snap.id,
            entry.policy,
            snap.cluster,
            "copy" if entry.kind == "copy" else "create",
            None,
            source_id=entry.source_id,
        )
        return rec, "journal"
    return None
