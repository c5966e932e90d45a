"""Write ``estates.json.gz``: saved estates and the exact ``plan --format json`` of each.

Run by hand, from the repository root, only to (re)make the corpus on purpose::

    .venv/bin/python -m tests.corpus.make_corpus

Each estate is drawn from ``random.Random(seed)`` (no hypothesis), so a rerun of this
script makes the same file as long as the snapshot ids, tags and planner stay the same.
What is saved is data, not code: the config as YAML text, the inventory, the state DB's
records and ``now`` as plain JSON, and the expected output as the exact string. The test
(``tests/test_plan_corpus.py``) rebuilds the inputs from that data alone, so later changes
to this script, to ``tests/factories.py`` or to the id helpers cannot change the corpus
silently; only rerunning this script can (then review the diff of the outputs).

The expected string is computed by the test module's own ``replan`` (the CLI's dry-run
path), after checking that the saved JSON rebuilds exactly the objects drawn here.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import gzip
import json
import random
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import yaml

from snapworker.core import ids, verify
from snapworker.core.model import (
    TAG_SOURCE_TIME,
    ActionKind,
    Cluster,
    GrantRecord,
    Inventory,
    OwnedRecord,
    PendingEntry,
    Snapshot,
    State,
    VerificationRecord,
    VerificationStatus,
)
from snapworker.core.ownership import ownership_tags
from snapworker.core.schedule import latest_fire
from snapworker.sandbox.moto_ext import wire as moto_wire
from tests import test_plan_corpus as corpus_test

OUT = Path(__file__).with_name("estates.json.gz")
FORMAT = 1
BASE_SEED = 20261127
N_RANDOM = 57  # plus the end-to-end estates below

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
SUPPORT = "amazon-redshift-support"
SHARE_POOL = ("111122223333", "444455556666", SUPPORT)
UNLISTED = "999988887777"
POLICY_POOL = ("prod-nightly", "warehouse-gfs", "Fin-Reports", "dev-weekly", "a-b", "drills")
RETIRED = "retired-policy"  # owns snapshots, is in no config
CLUSTER_POOL = (
    "prod-a",
    "prod-b",
    "prod-eu-1",
    "dw-1",
    "dw-2",
    "analytics-x",
    "dev-a",
    "staging-1",
)
ZONES = (
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/St_Johns",
    "Pacific/Chatham",
)
SCHEDULES = (
    "0 3 * * *",
    "30 1 * * *",
    "0 */6 * * *",
    "15 4 * * sun",
    "0 0 1 * *",
    "@daily",
    "@weekly",
    "45 23 * * 1-5",
    "0 2,14 * * *",
)
HOLD_TAGS = ("snapworker:hold", "legal-hold", "Retain Until")
HOLD_VALUES = ("legal", "audit 2026", "")
NOWS = (  # some next to a DST change (the buckets and schedules are local)
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 45, tzinfo=UTC),
    datetime(2026, 10, 4, 14, 0, tzinfo=UTC),
    datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
)


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


# --------------------------------------------------------------------------------------------
# Policies


def make_policy(rng: random.Random, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    patterns = rng.sample(["*", "prod-*", "dw-?", "analytics-*", "prod-a", "staging-*"], 2)
    select: dict[str, Any] = {"clusters": patterns[: rng.choice((1, 1, 2))]}
    roll = rng.random()
    if roll < 0.25:
        select["tags"] = {"env": "prod"}
    elif roll < 0.35:
        select["tags"] = {"env": "prod", "tier": "gold"}
    elif roll < 0.4:
        select = {"clusters": ["nothing-*"]}  # selects no cluster
    body["select"] = select
    if rng.random() < 0.55:
        body["create"] = {"schedule": rng.choice(SCHEDULES), "timezone": rng.choice(ZONES)}
    body["copy_automated"] = rng.random() < 0.7
    share: dict[str, Any] = {}
    if rng.random() < 0.75:
        share["accounts"] = rng.sample(SHARE_POOL, rng.randint(1, 3))
        if rng.random() < 0.5:
            share["unshare_after"] = rng.choice(("12h", "1d", "30d", "1w3d", "2w"))
    if rng.random() < 0.5:
        share["revoke_unlisted"] = rng.random() < 0.6
    if share:
        body["share"] = share
    body["retention"] = make_retention(rng)
    body["limits"] = {"max_deletes_per_run": rng.choice((0, 1, 2, 2, 3, 5, 8, 8, 20, 20, 200))}
    if rng.random() < 0.4:
        body["hold_tag"] = rng.choice(HOLD_TAGS[1:])
    if rng.random() < 0.2:
        body["verify"] = make_verify(rng, "create" in body)
    return body


def make_retention(rng: random.Random) -> dict[str, Any]:
    style = rng.choice(("age", "age", "gfs", "gfs", "within", "last", "none", "mixed"))
    r: dict[str, Any] = {}
    if style == "age":
        r["max_age_days"] = rng.choice((1, 3, 7, 14, 35))
        if rng.random() < 0.6:
            r["keep_last"] = rng.choice((1, 2, 3, 5))
    elif style == "gfs":
        for key, values in (
            ("keep_last", (None, 1, 3)),
            ("keep_hourly", (None, None, 0, 6, 24)),
            ("keep_daily", (None, 3, 7, -1)),
            ("keep_weekly", (None, 2, 5)),
            ("keep_monthly", (None, 3, 12)),
            ("keep_yearly", (None, None, 2)),
        ):
            v = rng.choice(values)
            if v is not None:
                r[key] = v
        if not r:
            r["keep_daily"] = 7
    elif style == "within":
        r["keep_within"] = rng.choice(("12h", "2d", "1w3d"))
        if rng.random() < 0.5:
            r["keep_weekly"] = rng.choice((2, 4))
    elif style == "last":
        r["keep_last"] = rng.choice((0, 1, 4, 10, -1))
    elif style == "mixed":
        r = {
            "max_age_days": rng.choice((2, 10, 60)),
            "keep_last": rng.choice((2, 3)),
            "keep_daily": rng.choice((3, 7)),
            "keep_monthly": rng.choice((2, 6)),
            "keep_within": rng.choice(("1d", "3d")),
        }
    if rng.random() < 0.15:
        r["fail_safe_days"] = rng.choice((5, 30, 400))
    return r


def make_verify(rng: random.Random, has_create: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedule": rng.choice(("0 5 * * 0", "0 6 * * *", "0 4 1 * *")),
        "timezone": rng.choice(("UTC", "Europe/Paris", "America/New_York")),
        "connect": {"db_user": "snapworker-verify", "db_name": "dev"},
        "checks": [
            {
                "name": "sales-present",
                "sql": "select count(*) from information_schema.tables where table_name='sales'",
                "expect": {"equals": 1},
            }
        ],
    }
    if has_create and rng.random() < 0.5:
        spec["record_before_snapshot"] = [
            {"name": "sales-rows", "sql": "select count(*) from sales"}
        ]
        spec["checks"].append(
            {
                "name": "sales-rows",
                "sql": "select count(*) from sales",
                "expect": {"same_as_snapshot": True},
            }
        )
    return spec


# --------------------------------------------------------------------------------------------
# The estate


class Estate:
    """What AWS shows, what the state DB holds, and when it is; drawn from one seed."""

    def __init__(self, rng: random.Random, now: datetime, account: str | None) -> None:
        self.rng = rng
        self.now = now
        self.account = account
        self.owner = ACCOUNT if account is not None else None
        self.clusters: dict[str, Cluster] = {}
        self.snaps: dict[str, Snapshot] = {}
        self.owned: dict[str, OwnedRecord] = {}
        self.grants: list[GrantRecord] = []
        self.pending: list[PendingEntry] = []
        self.verifications: list[VerificationRecord] = []

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def minutes(self, t: datetime) -> datetime:
        return t.replace(second=0, microsecond=0)

    def add(self, snap: Snapshot) -> bool:
        if snap.id in self.snaps:
            return False
        self.snaps[snap.id] = snap
        return True

    def extra_tags(self, policy: dict[str, Any]) -> dict[str, str]:
        tags: dict[str, str] = {}
        if self.chance(0.06):
            tags[policy.get("hold_tag", "snapworker:hold")] = self.rng.choice(HOLD_VALUES)
        elif self.chance(0.03):
            tags["snapworker:hold"] = "not this policy's hold tag"
        if self.chance(0.3):
            tags["owner"] = "dba"
        return tags

    def accounts_for(self, policy: dict[str, Any]) -> tuple[str, ...]:
        listed = policy.get("share", {}).get("accounts", [])
        out = [a for a in listed if self.chance(0.8)]
        if self.chance(0.08):
            out.append(UNLISTED)
        if self.chance(0.03):
            out.append(SUPPORT)
        return tuple(sorted(set(out)))  # as the gateway reports them

    def grant_records(self, snap: Snapshot, policy: dict[str, Any]) -> None:
        listed = policy.get("share", {}).get("accounts", [])
        for acc in listed:
            shared = acc in snap.accounts
            if shared and self.chance(0.75):
                at = snap.create_time + timedelta(minutes=self.rng.randint(5, 240))
                revoked = None
                if self.chance(0.05):  # revoked, then shared again by hand
                    revoked = at + timedelta(hours=2)
                self.grants.append(GrantRecord(snap.id, acc, min(at, self.now), revoked))
            elif not shared and self.chance(0.35):
                at = snap.create_time + timedelta(minutes=self.rng.randint(5, 600))
                revoked = at + timedelta(days=self.rng.randint(1, 40)) if self.chance(0.6) else None
                at, revoked = min(at, self.now), revoked and min(revoked, self.now)
                self.grants.append(GrantRecord(snap.id, acc, at, revoked))

    # -- owned snapshots

    def owned_copy(
        self,
        policy: dict[str, Any],
        cluster: str,
        source: str,
        source_time: datetime,
        *,
        state_p: float = 0.6,
    ) -> None:
        name = policy["name"]
        sid = ids.copy_snapshot_id(name, cluster, source)
        rec = OwnedRecord(sid, name, cluster, "copy", source_time, source_id=source)
        tags = ownership_tags(rec)
        if self.chance(0.06):
            del tags[TAG_SOURCE_TIME]  # the source-time tag was lost
        made = source_time + timedelta(
            minutes=self.rng.randint(3, 90), seconds=self.rng.randint(0, 59)
        )
        self.made(policy, rec, tags, made, state_p)

    def owned_create(self, policy: dict[str, Any], cluster: str, fire: datetime) -> None:
        name = policy["name"]
        sid = ids.create_snapshot_id(name, cluster, fire)
        made = fire + timedelta(seconds=self.rng.randint(0, 300))
        rec = OwnedRecord(sid, name, cluster, "create", made, fire_time=fire)
        self.made(policy, rec, ownership_tags(rec), made, 0.6)

    def made(
        self,
        policy: dict[str, Any],
        rec: OwnedRecord,
        tags: dict[str, str],
        made: datetime,
        state_p: float,
    ) -> None:
        roll = self.rng.random()
        status = "available"
        if made > self.now - timedelta(hours=2) and roll < 0.4:
            status = "creating"
        elif roll < 0.02:
            status = self.rng.choice(("deleting", "failed"))
        proof = self.rng.random()
        if proof < 0.05:  # untagged: the state DB proves it (a crash before CreateTags)
            tags = {}
            self.owned[rec.snapshot_id] = rec
        elif proof < 0.08:  # untagged: a pending journal entry proves it
            tags = {}
            self.pending.append(
                PendingEntry(
                    len(self.pending) + 1,
                    f"{rec.policy}|{rec.made_for}|{rec.snapshot_id}",
                    rec.policy,
                    rec.made_for,
                    rec.snapshot_id,
                    rec.cluster,
                    source_id=rec.source_id,
                )
            )
        elif self.chance(state_p):
            db = rec
            if rec.made_for == "copy" and self.chance(0.04):  # the tag was edited by hand
                assert rec.data_time is not None
                db = dataclasses.replace(rec, data_time=rec.data_time - timedelta(hours=7))
            self.owned[rec.snapshot_id] = db
        snap = Snapshot(
            rec.snapshot_id,
            rec.cluster,
            "manual",
            status,
            made,
            tags | self.extra_tags(policy),
            self.accounts_for(policy) if status == "available" else (),
            self.owner,
            self.rng.choice((-1, -1, 30, None)),
        )
        if self.add(snap):
            self.grant_records(snap, policy)


def fires(schedule: str, tz: str, now: datetime, n: int) -> list[datetime]:
    """The last ``n`` fire times of ``schedule`` at or before ``now``, newest first."""
    out: list[datetime] = []
    t = now
    for _ in range(n):
        f = latest_fire(corpus_cron(schedule), tz, t)
        out.append(f)
        t = f - timedelta(seconds=1)
    return out


def corpus_cron(schedule: str) -> str:
    nick = {"@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@hourly": "0 * * * *"}
    return nick.get(schedule, schedule)


def selected(policy: dict[str, Any], cluster: Cluster) -> bool:
    """The planner's ``selects``, on the policy's plain data."""
    if "snapworker:scratch" in cluster.tags:
        return False
    sel = policy.get("select", {})
    if not any(fnmatch.fnmatchcase(cluster.id, p) for p in sel.get("clusters", ["*"])):
        return False
    return all(cluster.tags.get(k) == v for k, v in sel.get("tags", {}).items())


def draw_estate(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    if rng.random() < 0.2:
        now = rng.choice(NOWS) + timedelta(minutes=rng.randint(-90, 90))
    else:
        now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 700 * 24 * 60))
    if rng.random() < 0.3:
        now += timedelta(seconds=rng.randint(1, 59))
    account = ACCOUNT if rng.random() < 0.85 else None
    e = Estate(rng, now, account)

    names = rng.sample(POLICY_POOL, rng.choice((1, 1, 2, 2, 3, 4)))
    policies = [make_policy(rng, n) for n in names]

    for cid in CLUSTER_POOL:
        if rng.random() < 0.25:
            continue
        tags: dict[str, str] = {}
        if rng.random() < 0.7:
            tags["env"] = "prod" if cid.startswith(("prod", "dw", "analytics")) else "dev"
        if rng.random() < 0.3:
            tags["tier"] = "gold"
        status = rng.choice(("available",) * 6 + ("modifying", "paused", "resizing"))
        e.clusters[cid] = Cluster(cid, status, tags)

    size = rng.choice((0.3, 0.4, 0.6, 0.8, 1.0, 1.3))  # how long each series is
    for policy in policies:
        name = policy["name"]
        chosen = [c for c in e.clusters.values() if selected(policy, c)]
        # Clusters it owns snapshots of: the selected ones, and now and then a deleted one.
        homes = [c.id for c in chosen]
        if not homes:  # what it selected before its select changed: still its own
            homes = rng.sample(CLUSTER_POOL, rng.randint(1, 2))
        if rng.random() < 0.2:
            homes.append(rng.choice([c for c in CLUSTER_POOL if c not in e.clusters] or ["gone-1"]))
        for cid in homes:
            spacing = timedelta(hours=rng.choice((8, 12, 24, 24, 72, 168)))
            offset = timedelta(minutes=rng.randint(20, 600))
            n = int(rng.randint(2, 16) * size)
            first = rng.randint(0, 3)  # the newest few: see the automated snapshots below
            # A policy that copies no more (or never did) still owns its earlier copies.
            if policy.get("copy_automated") or rng.random() < 0.7:
                for k in range(first, n):
                    if rng.random() < 0.1:
                        continue  # a gap
                    t = e.minutes(now - offset - k * spacing)
                    src = f"rs:{cid}-{t:%Y-%m-%d-%H-%M}"
                    e.owned_copy(policy, cid, src, t)
                    if rng.random() < 0.05:  # deleted by the worker, record kept
                        rec = e.owned.get(ids.copy_snapshot_id(name, cid, src))
                        if rec is not None and e.snaps.get(rec.snapshot_id) is not None:
                            del e.snaps[rec.snapshot_id]
                            e.grants = [g for g in e.grants if g.snapshot_id != rec.snapshot_id]
                            e.owned[rec.snapshot_id] = dataclasses.replace(
                                rec, deleted_at=now - timedelta(days=rng.randint(1, 20))
                            )
            if "create" in policy and rng.random() < 0.85:
                spec = policy["create"]
                m = max(1, int(rng.randint(1, 16) * size))
                times = fires(spec["schedule"], spec["timezone"], now, m + 1)
                skip_latest = rng.random() < 0.5  # the latest fire not taken yet: due
                for i, fire in enumerate(times[1 if skip_latest else 0 :]):
                    if i > 0 and rng.random() < 0.15:
                        continue
                    e.owned_create(policy, cid, fire)
        if rng.random() < 0.1 and chosen:  # someone else took the id of the due snapshot
            spec = policy.get("create")
            if spec is not None:
                fire = latest_fire(corpus_cron(spec["schedule"]), spec["timezone"], now)
                sid = ids.create_snapshot_id(name, chosen[0].id, fire)
                e.add(Snapshot(sid, chosen[0].id, "manual", "available", fire, {}, (), e.owner))

    # Automated snapshots: every cluster, the newest few (some past a short retention).
    for cid, c in e.clusters.items():
        spacing = timedelta(hours=rng.choice((8, 24)))
        offset = timedelta(minutes=rng.randint(20, 600))
        for k in range(rng.randint(0, 8)):
            t = e.minutes(now - offset - k * spacing)
            if rng.random() < 0.04:
                t = e.minutes(now - timedelta(days=rng.randint(36, 60)))  # long kept
            status = "creating" if k == 0 and rng.random() < 0.2 else "available"
            auto = Snapshot(
                f"rs:{cid}-{t:%Y-%m-%d-%H-%M}", cid, "automated", status, t, {}, (), e.owner
            )
            if not e.add(auto):
                continue
            for policy in policies:
                if not (policy.get("copy_automated") and selected(policy, c)):
                    continue
                roll = rng.random()
                if status == "available" and roll < 0.45:
                    e.owned_copy(policy, cid, auto.id, t, state_p=0.75)
                elif roll < 0.5:  # copied and deleted long ago: only the record is left
                    sid = ids.copy_snapshot_id(policy["name"], cid, auto.id)
                    e.owned.setdefault(
                        sid,
                        OwnedRecord(
                            sid,
                            policy["name"],
                            cid,
                            "copy",
                            t,
                            source_id=auto.id,
                            deleted_at=now - timedelta(hours=1),
                        ),
                    )
                elif roll < 0.53:  # the copy's id is taken by a snapshot we do not own
                    sid = ids.copy_snapshot_id(policy["name"], cid, auto.id)
                    e.add(Snapshot(sid, cid, "manual", "available", t, {"owner": "dba"}))

    add_strangers(e, policies)
    add_verifications(e, policies)
    add_noise_state(e)
    if rng.random() < 0.15:  # a snapshot with its data in the future (clock skew)
        p = rng.choice(policies)
        if p.get("copy_automated"):
            t = e.minutes(now + timedelta(hours=rng.randint(1, 30)))
            e.owned_copy(p, rng.choice(CLUSTER_POOL), f"rs:skew-{t:%Y-%m-%d-%H-%M}", t)

    only = None
    if len(policies) > 1 and rng.random() < 0.2:
        only = [p["name"] for p in rng.sample(policies, len(policies) - 1)]
    snaps = list(e.snaps.values())
    rng.shuffle(snaps)  # AWS lists in its own order; the plan must not depend on it
    return pack(e, policies, snaps, only)


def add_strangers(e: Estate, policies: list[dict[str, Any]]) -> None:
    """Snapshots that are not the worker's, or not of a configured policy."""
    rng = e.rng
    cids = list(e.clusters) or list(CLUSTER_POOL)
    for i in range(rng.randint(0, 6)):
        cid = rng.choice(cids)
        t = e.minutes(e.now - timedelta(minutes=rng.randint(60, 400 * 24 * 60)))
        kind = rng.choice(("manual", "lookalike", "mismatch", "other", "retired", "retired"))
        name = rng.choice(policies)["name"]
        src = f"rs:{cid}-{t:%Y-%m-%d-%H-%M}"
        rec = OwnedRecord(ids.copy_snapshot_id(name, cid, src), name, cid, "copy", t, source_id=src)
        if kind == "manual":
            e.add(Snapshot(f"manual-{cid}-{i}", cid, "manual", "available", t, {"owner": "dba"}))
        elif kind == "lookalike":  # the worker's name pattern, no tags
            e.add(Snapshot(rec.snapshot_id, cid, "manual", "available", t, {}, (UNLISTED,)))
        elif kind == "mismatch":  # the worker's tags, but not for this id (or cluster)
            tags = ownership_tags(rec)
            if rng.random() < 0.5:
                tags["snapworker:cluster"] = "elsewhere"
                sid = rec.snapshot_id
            else:
                sid = f"sw-{name.lower()}-forged-{i}"
            e.add(Snapshot(sid, cid, "manual", "available", t, tags, (), e.owner))
        elif kind == "other":  # another account's snapshot, shared with this one
            e.add(
                Snapshot(
                    rec.snapshot_id,
                    cid,
                    "manual",
                    "available",
                    t,
                    ownership_tags(rec),
                    (),
                    OTHER_ACCOUNT,
                )
            )
        else:  # owned by a policy no longer in the config
            r = OwnedRecord(
                ids.copy_snapshot_id(RETIRED, cid, src), RETIRED, cid, "copy", t, source_id=src
            )
            e.add(
                Snapshot(
                    r.snapshot_id, cid, "manual", "available", t, ownership_tags(r), (), e.owner
                )
            )


def add_verifications(e: Estate, policies: list[dict[str, Any]]) -> None:
    rng = e.rng
    for policy in policies:
        spec = policy.get("verify")
        if spec is None:
            continue
        name = policy["name"]
        homes = sorted(
            {s.cluster for s in e.snaps.values() if s.tags.get("snapworker:policy") == name}
        )
        for cid in homes:
            roll = rng.random()
            if roll < 0.3:
                continue  # never verified
            fire = latest_fire(corpus_cron(spec["schedule"]), spec["timezone"], e.now)
            if roll < 0.6:
                fire -= timedelta(days=rng.choice((7, 30)))  # the last drill is old: due
            status = rng.choice(("passed", "passed", "failed", "error", "pending", "interrupted"))
            scratch = verify.scratch_cluster_id(name, cid, fire)
            done = status in ("passed", "failed", "error") and rng.random() < 0.8
            e.verifications.append(
                VerificationRecord(
                    name,
                    cid,
                    f"snap-of-{cid}",
                    fire,
                    scratch,
                    cast(VerificationStatus, status),
                    done,
                )
            )
            if not done and rng.random() < 0.6:  # its scratch cluster is still there
                tags = (
                    verify.scratch_tags(name, cid, fire, f"snap-of-{cid}")
                    if rng.random() < 0.6
                    else {}
                )
                e.clusters[scratch] = Cluster(scratch, rng.choice(("available", "creating")), tags)


def add_noise_state(e: Estate) -> None:
    """Journal entries of other kinds (the planner reads only create/copy ones)."""
    rng = e.rng
    targets = sorted(e.snaps)
    for _ in range(rng.randint(0, 2) if targets else 0):
        sid = rng.choice(targets)
        kind = rng.choice(("share", "revoke", "delete", "tag"))
        acc = rng.choice(SHARE_POOL) if kind in ("share", "revoke") else None
        pol = rng.choice(POLICY_POOL)
        e.pending.append(
            PendingEntry(
                len(e.pending) + 1,
                f"{pol}|{kind}|{sid}",
                pol,
                cast(ActionKind, kind),
                sid,
                e.snaps[sid].cluster,
                acc,
            )
        )


# --------------------------------------------------------------------------------------------
# Serialisation


def _plain(obj: Any) -> dict[str, Any]:
    """A dataclass as JSON data: times as ISO 8601, tuples as lists, defaults left out."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and v == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and v == f.default_factory():
            continue
        if isinstance(v, datetime):
            v = iso(v)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, dict):
            v = dict(v)
        out[f.name] = v
    return out


def config_yaml(policies: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"policies": policies}, sort_keys=False, width=100)


def sized(s: Snapshot, all_sized: bool) -> Snapshot:
    """The snapshot with the sizes the sandbox's moto would report for it (drawn from its ids,
    not from the estate's random stream, so adding them changed no other draw); about one in
    ten of the in-process estates' snapshots has none (AWS left them out: sizes unknown)."""
    if not all_sized and moto_wire._unit(f"corpus/{s.id}") < 0.1:
        return s
    total, incremental = moto_wire.default_sizes(s.cluster, s.id)
    return dataclasses.replace(s, size_mb=total, incremental_mb=incremental)


def pack(
    e: Estate,
    policies: list[dict[str, Any]],
    snaps: list[Snapshot],
    only: list[str] | None,
    all_sized: bool = False,
) -> dict[str, Any]:
    snaps = [sized(s, all_sized) for s in snaps]
    inventory = {
        "clusters": [_plain(c) for c in e.clusters.values()],
        "snapshots": [_plain(s) for s in snaps],
    }
    state = {
        "owned": [_plain(r) for r in e.owned.values()],
        "grants": [_plain(g) for g in e.grants],
        "pending": [_plain(p) for p in e.pending],
        "verifications": [_plain(v) for v in e.verifications],
    }
    # The saved data rebuilds exactly what was drawn (times, tuples, None, order).
    saved = json.loads(json.dumps({"inventory": inventory, "state": state}))
    assert corpus_test.inventory_from(saved["inventory"]) == Inventory(
        dict(e.clusters), {s.id: s for s in snaps}
    )
    assert corpus_test.state_from(saved["state"]) == State(
        dict(e.owned), tuple(e.grants), tuple(e.pending), tuple(e.verifications)
    )
    return {
        "config_yaml": config_yaml(policies),
        "policies": only,
        "account": e.account,
        "now": iso(e.now),
        "inventory": inventory,
        "state": state,
    }


# --------------------------------------------------------------------------------------------
# The end-to-end estates: seedable into moto and the state DB (this account's snapshots
# only, no journal entries, no drills), times on whole minutes away from every boundary so
# that the CLI's clock, a fraction of a second past ``now``, plans the same.


def e2e_estate(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now = datetime(2026, 6, 15, 9, 0, tzinfo=UTC) + timedelta(days=rng.randint(0, 200))
    e = Estate(rng, now, ACCOUNT)
    e.clusters = {
        "prod-a": Cluster("prod-a", "available", {"env": "prod"}),
        "prod-b": Cluster(
            "prod-b", rng.choice(("available", "paused")), {"env": "prod", "tier": "gold"}
        ),
        "dev-a": Cluster("dev-a", "available", {"env": "dev"}),
    }
    policies: list[dict[str, Any]] = [
        {
            "name": "prod-nightly",
            "select": {"clusters": ["prod-*"], "tags": {"env": "prod"}},
            "create": {"schedule": "0 3 * * *", "timezone": rng.choice(ZONES)},
            "copy_automated": True,
            "share": {
                "accounts": ["111122223333", SUPPORT],
                "unshare_after": "1w3d",
                "revoke_unlisted": rng.random() < 0.5,
            },
            "retention": {"max_age_days": 20, "keep_last": 3, "keep_monthly": 3},
            "limits": {"max_deletes_per_run": rng.choice((2, 4))},
            "hold_tag": "legal-hold",
        },
        {
            "name": "dev-weekly",
            "select": {"clusters": ["dev-*"]},
            "copy_automated": True,
            "retention": {"keep_within": "2d", "keep_weekly": 2},
        },
    ]
    for cid in e.clusters:
        for policy in policies:
            if not selected(policy, e.clusters[cid]):
                continue
            for k in range(rng.randint(8, 16)):
                t = now - timedelta(days=k * 2 + 1, minutes=17 + rng.randint(0, 40) * 3)
                e.owned_copy(policy, cid, f"rs:{cid}-{t:%Y-%m-%d-%H-%M}", t, state_p=0.7)
        for k in range(rng.randint(1, 4)):
            t = now - timedelta(hours=5 + 9 * k, minutes=13)
            e.add(
                Snapshot(
                    f"rs:{cid}-{t:%Y-%m-%d-%H-%M}",
                    cid,
                    "automated",
                    "available",
                    t,
                    {},
                    (),
                    ACCOUNT,
                )
            )
        if policies[0]["create"] and cid.startswith("prod"):
            spec = policies[0]["create"]
            for fire in fires(spec["schedule"], spec["timezone"], now - timedelta(days=1), 5):
                e.owned_create(policies[0], cid, fire)
    e.add(
        Snapshot(
            "manual-keep-forever",
            "prod-a",
            "manual",
            "available",
            now - timedelta(days=400),
            {"owner": "dba"},
            (),
            ACCOUNT,
        )
    )
    # Journal-proved ownership cannot be seeded without a run: prove by tags or the DB only.
    e.pending.clear()
    for s in list(e.snaps.values()):
        if (
            not s.tags
            and s.type == "manual"
            and s.id not in e.owned
            and s.id != "manual-keep-forever"
        ):
            del e.snaps[s.id]
    snaps = list(e.snaps.values())
    for s in snaps:  # moto reports a manual snapshot's retention period, -1 by default
        if s.type == "manual" and s.retention_period is None:
            e.snaps[s.id] = dataclasses.replace(s, retention_period=-1)
    out = pack(e, policies, list(e.snaps.values()), None, all_sized=True)
    out["e2e"] = True
    return out


# --------------------------------------------------------------------------------------------


def census(estates: list[dict[str, Any]]) -> Counter[str]:
    c: Counter[str] = Counter()
    for est in estates:
        p = json.loads(est["expected"])
        for a in p["actions"]:
            c[f"action {a['action']}: {a['reason'].split(' ')[0]}"] += 1
        for k in p["kept"]:
            c[f"kept{' held' if k.get('held') else ''}: {kept_kind(k['reason'])}"] += 1
        c["drift"] += len(p["drift"])
        for n in p["notes"]:
            words = [w for w in n["message"].split(" ") if not any(ch.isdigit() for ch in w)]
            c[f"note {n['level']}: {' '.join(words[:4])}"] += 1
    return c


def kept_kind(reason: str) -> str:
    for word in ("deferred", "status", "held", "future", "no retention rule"):
        if word in reason:
            return word
    return reason.split(" ")[0]


def main() -> int:
    estates: list[dict[str, Any]] = []
    for i in range(N_RANDOM):
        est = draw_estate(BASE_SEED + i)
        est = {"name": f"estate-{i:02d}", "seed": BASE_SEED + i, **est}
        estates.append(est)
    for j in range(3):
        est = e2e_estate(BASE_SEED + 1000 + j)
        estates.append({"name": f"e2e-{j}", "seed": BASE_SEED + 1000 + j, **est})
    with tempfile.TemporaryDirectory() as tmp:
        for est in estates:
            est["expected"] = corpus_test.replan(est, Path(tmp))
            if est.get("e2e"):  # the CLI's clock runs a little past now: same plan
                later = dict(
                    est, now=iso(datetime.fromisoformat(est["now"]) + timedelta(seconds=0.999))
                )
                assert corpus_test.replan(later, Path(tmp)) == est["expected"], est["name"]
    data = {"format": FORMAT, "estates": estates}
    raw = json.dumps(data, indent=None, sort_keys=False, separators=(",", ":")).encode()
    OUT.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    snaps = sum(len(e["inventory"]["snapshots"]) for e in estates)
    biggest = max(len(e["inventory"]["snapshots"]) for e in estates)
    print(f"{OUT}: {len(estates)} estates, {snaps} snapshots (at most {biggest} in one)")
    print(f"  {len(raw)} bytes of JSON, {OUT.stat().st_size} gzipped")
    for k, n in sorted(census(estates).items()):
        print(f"  {n:6d}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
