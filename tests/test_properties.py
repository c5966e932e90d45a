"""Safety properties of the planner, checked with hypothesis over generated estates.

Each example is a whole estate: clusters (with tags and statuses), automated snapshots,
snapshots the policies own (copies and creates carrying the real tags and ids, some held,
some shared, some still ``creating``), snapshots owned only through the state DB or an
interrupted journal entry, and snapshots the worker must never touch: look-alike names
without tags, tags that do not match the id, snapshots of a policy not in the config or
of another AWS account, plain manual ones. Policies use every retention rule (GFS counts
with -1, caps down to 0), share lists, ``unshare_after``, ``revoke_unlisted`` and create
schedules; the recorded state holds owned records (deleted ones too), grants and pending
journal entries; ``now`` is random.

The properties are those of docs/design.md's safety invariants, over ``core.planner.plan``:

(a) nothing but a copy (whose source is an automated snapshot) ever targets a snapshot
    the action's policy does not own per ``ownership.owner_of``;
(b) a delete comes after a revoke of the same snapshot for every account authorized;
(c) never below ``keep_last`` per (policy, cluster), the newest ones stay;
(d) at most ``max_deletes_per_run`` deletes per policy, and they are the oldest expired;
(e) a held snapshot is never revoked nor deleted;
(f) the plan does not depend on the order of its input;
(g) applying the plan (a pure simulation of AWS and of the state DB below) and planning
    again converges; see ``test_applying_the_plan_converges`` for the exact statement.

Run with ``-s`` to see how many examples each property checked.
"""

from __future__ import annotations

import functools
import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapworker.config import Policy
from snapworker.core import ids
from snapworker.core.model import (
    SUPPORT_ALIAS,
    TAG_CLUSTER,
    TAG_SOURCE_TIME,
    ActionKind,
    Cluster,
    GrantRecord,
    Inventory,
    MadeFor,
    OwnedRecord,
    PendingEntry,
    Plan,
    Snapshot,
    State,
)
from snapworker.core.ownership import owner_of, ownership_tags
from snapworker.core.planner import owned_snapshots, plan, rules_of
from snapworker.core.retention import Candidate, evaluate

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
POLICY_POOL = ("alpha", "beta-1")
FOREIGN_POLICY = "gamma"  # owns snapshots, but is not in the config
CLUSTER_POOL = ("prod-a", "prod-b", "dev-a")
SHARE_POOL = ("111122223333", "444455556666", SUPPORT_ALIAS)
UNLISTED = "999988887777"
HOLD_TAGS = ("snapworker:hold", "legal-hold")
SCHEDULES = ("0 3 * * *", "*/30 * * * *", "0 4 * * sun", "15 */6 * * *", "0 0 1 * *")
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata")

EXAMPLES = 300
CHECKED: Counter[str] = Counter()
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def _report_examples() -> Iterator[None]:
    """Print how many generated examples each property checked (visible with ``-s``)."""
    yield
    total = sum(CHECKED.values())
    detail = ", ".join(f"{name} {n}" for name, n in sorted(CHECKED.items()))
    print(f"\nproperties checked: {total} examples ({detail})")


def property_test(name: str, *strategies: st.SearchStrategy[Any]) -> Any:
    """Turn a property (a function of generated values) into a test that checks it on
    ``EXAMPLES`` examples, then records how many it checked: a ``figure`` line in the test
    summary (see ``tests/conftest.py``), also printed with ``-s``."""

    def wrap(prop: Any) -> Any:
        def test(record_property: Any) -> None:
            checked = 0

            @PROPERTY_SETTINGS
            @given(st.tuples(*strategies))
            def run(args: tuple[Any, ...]) -> None:
                nonlocal checked
                prop(*args)
                checked += 1

            run.__qualname__ = prop.__qualname__  # hypothesis keys its database on it
            run()
            CHECKED[name] += checked
            record_property("figure", f"properties checked: {checked} examples of ({name})")

        # No functools.wraps: pytest must see ``test(record_property)``, not the property.
        test.__name__ = test.__qualname__ = prop.__name__
        test.__doc__ = prop.__doc__
        test.__module__ = prop.__module__
        return test

    return wrap


# -- strategies -------------------------------------------------------------------------


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """None twice as often as a value: fewer rules, so that more snapshots expire."""
    return st.sampled_from([None, None, 0]).flatmap(lambda x: st.none() if x is None else strategy)


# Strategies are built once: hypothesis validates each new strategy object, which would
# otherwise cost more than the planner itself.
_KEEP = _opt(st.sampled_from([-1, 0, 1, 2, 3, 5]))
_RETENTION = st.fixed_dictionaries(
    {
        "max_age_days": _opt(st.integers(1, 60)),
        "keep_last": _KEEP,
        "keep_hourly": _KEEP,
        "keep_daily": _KEEP,
        "keep_weekly": _KEEP,
        "keep_monthly": _KEEP,
        "keep_yearly": _KEEP,
        "keep_within": _opt(st.sampled_from(["12h", "2d", "1w3d"])),
    }
).map(lambda r: {k: v for k, v in r.items() if v is not None})
_SELECT = st.fixed_dictionaries(
    {
        "clusters": st.lists(
            st.sampled_from(["*", "prod-*", "prod-a", "dev-*"]), min_size=1, max_size=2
        ),
        "tags": st.sampled_from([{}, {"env": "prod"}, {"env": "dev"}]),
    }
)
_SHARE = st.fixed_dictionaries(
    {
        "accounts": st.lists(st.sampled_from(SHARE_POOL), unique=True),
        "unshare_after": _opt(st.sampled_from(["1d", "30d"])),
        "revoke_unlisted": st.booleans(),
    }
)
_CREATE = _opt(
    st.fixed_dictionaries(
        {"schedule": st.sampled_from(SCHEDULES), "timezone": st.sampled_from(ZONES)}
    )
)
_POLICY_BODY = st.fixed_dictionaries(
    {
        "select": _SELECT,
        "copy_automated": st.booleans(),
        "share": _SHARE,
        "retention": _RETENTION,
        "limits": st.fixed_dictionaries({"max_deletes_per_run": st.integers(0, 5)}),
        "hold_tag": st.sampled_from(HOLD_TAGS),
        "create": _CREATE,
    }
)


def _policy(name: str, body: dict[str, Any]) -> Policy:
    data = {k: v for k, v in body.items() if v is not None}
    return Policy.model_validate({"name": name, **data})


policies_st = st.lists(st.sampled_from(POLICY_POOL), min_size=1, max_size=2, unique=True).flatmap(
    lambda names: st.tuples(*(_POLICY_BODY.map(functools.partial(_policy, n)) for n in names)).map(
        list
    )
)


KINDS = (
    "automated",
    "copy",
    "create",
    "state-only",
    "journal-only",
    "lookalike",
    "mismatched-tags",
    "other-account",
    "manual",
    "deleted-record",
    "series",
)


class Estate:
    """The generated world: what AWS shows, what the state DB holds, and when it is."""

    def __init__(
        self,
        now: datetime,
        clusters: dict[str, Cluster],
        snapshots: dict[str, Snapshot],
        state: State,
        account: str | None,
    ) -> None:
        self.now = now
        self.inventory = Inventory(clusters, snapshots)
        self.state = state
        self.account = account

    def __repr__(self) -> str:  # hypothesis prints this for a falsifying example
        snaps = "\n    ".join(repr(s) for s in self.inventory.snapshots.values())
        return (
            f"Estate(now={self.now!r}, account={self.account!r},\n  clusters="
            f"{list(self.inventory.clusters.values())!r},\n  snapshots=\n    {snaps}\n"
            f"  state={self.state!r})"
        )


_OWNING_POLICIES = (*POLICY_POOL, FOREIGN_POLICY)
_NOW_OFFSET = st.integers(0, 2 * 365 * 24 * 60)
_AGE = st.integers(-2 * 24 * 60, 400 * 24 * 60)  # minutes before now; a little in the future
_AGE_RECENT = st.integers(-2 * 24 * 60, 40 * 24 * 60)
_BOOL = st.booleans()
_D4, _D5, _D6 = st.integers(0, 3), st.integers(0, 4), st.integers(0, 5)
_COUNT = st.integers(0, 16)
_SERIES = st.integers(0, 8)
_KIND = st.sampled_from((*KINDS, "copy", "copy", "create", "automated"))
_CID = st.sampled_from(CLUSTER_POOL)
_OWNING = st.sampled_from((*POLICY_POOL, *POLICY_POOL, POLICY_POOL[0], FOREIGN_POLICY))
_CLUSTER_STATUS = st.sampled_from(["available", "available", "modifying", "paused"])
_ENV = st.sampled_from([{}, {"env": "prod"}, {"env": "dev"}])
_ACCOUNTS = st.lists(st.sampled_from((*SHARE_POOL, UNLISTED)), unique=True).map(
    lambda a: tuple(sorted(a))
)
_SNAP_STATUS = st.sampled_from(["available", "available", "available", "creating", "deleting"])
_AUTO_STATUS = st.sampled_from(["available", "available", "creating"])
_HOLD = st.sampled_from(HOLD_TAGS)
_MADE_AFTER = st.integers(0, 600)
_FORGERY = st.sampled_from(["id", "cluster"])
_GRANT_AGE = st.integers(0, 60 * 24)
_REVOKE_AFTER = st.integers(0, 24)
_PENDING_KIND = st.sampled_from(list[ActionKind](["share", "revoke", "delete", "tag"]))
_SHARE_ACC = st.sampled_from(SHARE_POOL)
_ACCOUNT = st.sampled_from([ACCOUNT, None])
_INDEX = st.integers(0, 63)
_GRANTS = st.integers(0, 12)
_GRANTEE = st.sampled_from((*SHARE_POOL, UNLISTED))


@st.composite
def estate_st(draw: st.DrawFn) -> Estate:
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(_NOW_OFFSET))

    def past(recent: bool = False) -> datetime:
        t = now - timedelta(minutes=draw(_AGE_RECENT if recent else _AGE))
        return t.replace(second=0, microsecond=0)

    clusters: dict[str, Cluster] = {}
    for cid in CLUSTER_POOL:
        if draw(_D5) > 0:
            status = draw(_CLUSTER_STATUS)
            env = draw(_ENV)
            clusters[cid] = Cluster(cid, status, env)

    snapshots: dict[str, Snapshot] = {}
    owned: dict[str, OwnedRecord] = {}
    pending: list[PendingEntry] = []
    automated: list[Snapshot] = []

    def add(snap: Snapshot) -> bool:
        if snap.id in snapshots:
            return False
        snapshots[snap.id] = snap
        return True

    def extra_tags(pol: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        if draw(_D6) == 0:
            tags[draw(_HOLD)] = "legal"
        if draw(_BOOL):
            tags["owner"] = "dba"
        return tags

    def copy_record(pol: str, cid: str, i: int) -> OwnedRecord:
        if len(automated) > 0 and draw(_BOOL):
            src = automated[draw(_INDEX) % len(automated)]
            source, source_time, cid = src.id, src.create_time, src.cluster
        else:  # the source is gone (past its retention, or its cluster deleted)
            source_time = past()
            source = f"rs:{cid}-{source_time:%Y-%m-%d-%H-%M}-{i}"
        sid = ids.copy_snapshot_id(pol, cid, source)
        return OwnedRecord(sid, pol, cid, "copy", source_time, source_id=source)

    def create_record(pol: str, cid: str) -> OwnedRecord:
        fire = past()
        sid = ids.create_snapshot_id(pol, cid, fire)
        return OwnedRecord(sid, pol, cid, "create", fire, fire_time=fire)

    def made_snapshot(kind: str, pol: str, cid: str, i: int) -> None:
        """A copy or create of ``pol``, with the real tags and id (some held or shared)."""
        rec = copy_record(pol, cid, i) if kind == "copy" else create_record(pol, cid)
        tags = ownership_tags(rec)
        if kind == "copy" and draw(_D4) == 0:
            del tags[TAG_SOURCE_TIME]  # a copy whose source-time tag was lost
        assert rec.data_time is not None
        made = rec.data_time + timedelta(minutes=draw(_MADE_AFTER))
        add(
            Snapshot(
                rec.snapshot_id,
                rec.cluster,
                "manual",
                draw(_SNAP_STATUS),
                made,
                tags | extra_tags(pol),
                draw(_ACCOUNTS),
                draw(_ACCOUNT),
            )
        )
        if draw(_BOOL):
            owned[rec.snapshot_id] = rec

    for pol in POLICY_POOL:  # a series per configured policy: retention has work to do
        cid = draw(_CID)
        for j in range(draw(_SERIES)):
            made_snapshot("copy" if draw(_BOOL) else "create", pol, cid, 1000 + j)
    n = draw(_COUNT)
    for i in range(n):
        kind = draw(_KIND)
        cid = draw(_CID)
        pol = draw(_OWNING)
        if kind == "automated":
            t = past(recent=True)
            snap = Snapshot(
                f"rs:{cid}-{t:%Y-%m-%d-%H-%M}-{i}",
                cid,
                "automated",
                draw(_AUTO_STATUS),
                t,
            )
            if add(snap):
                automated.append(snap)
        elif kind in ("copy", "create"):
            made_snapshot(kind, pol, cid, i)
        elif kind == "series":  # many of one (policy, cluster): retention has work to do
            for j in range(draw(_SERIES)):
                made_snapshot("copy" if draw(_BOOL) else "create", pol, cid, 100 * i + j)
        elif kind in ("state-only", "journal-only"):
            rec = copy_record(pol, cid, i) if draw(_BOOL) else create_record(pol, cid)
            assert rec.data_time is not None
            snap = Snapshot(
                rec.snapshot_id,
                rec.cluster,
                "manual",
                draw(_SNAP_STATUS),
                rec.data_time,
                extra_tags(pol),
                draw(_ACCOUNTS),
            )
            if not add(snap):
                continue
            if kind == "state-only":
                owned[rec.snapshot_id] = rec
            else:
                pending.append(
                    PendingEntry(
                        len(pending) + 1,
                        f"{pol}|{rec.made_for}|{rec.snapshot_id}",
                        pol,
                        rec.made_for,
                        rec.snapshot_id,
                        rec.cluster,
                        source_id=rec.source_id,
                    )
                )
        elif kind == "lookalike":  # the worker's name pattern, no ownership tags
            rec = copy_record(pol, cid, i) if draw(_BOOL) else create_record(pol, cid)
            assert rec.data_time is not None
            add(
                Snapshot(
                    rec.snapshot_id,
                    rec.cluster,
                    "manual",
                    "available",
                    rec.data_time,
                    extra_tags(pol),
                    draw(_ACCOUNTS),
                )
            )
        elif kind == "mismatched-tags":  # tags of the worker, but not for this id
            rec = copy_record(pol, cid, i) if draw(_BOOL) else create_record(pol, cid)
            assert rec.data_time is not None
            how = draw(_FORGERY)
            tags = ownership_tags(rec)
            sid = rec.snapshot_id
            if how == "id":
                forged = ids.copy_snapshot_id(pol, cid, f"rs:other-{i}")
                sid = f"sw-{pol}-forged-{i}" if draw(_BOOL) else forged
            else:
                tags[TAG_CLUSTER] = "elsewhere"
            add(
                Snapshot(
                    sid,
                    rec.cluster,
                    "manual",
                    "available",
                    rec.data_time,
                    tags,
                    draw(_ACCOUNTS),
                    ACCOUNT,
                )
            )
        elif kind == "other-account":  # shared with us by another account: never ours
            rec = copy_record(pol, cid, i) if draw(_BOOL) else create_record(pol, cid)
            assert rec.data_time is not None
            add(
                Snapshot(
                    rec.snapshot_id,
                    rec.cluster,
                    "manual",
                    "available",
                    rec.data_time,
                    ownership_tags(rec),
                    (),
                    OTHER_ACCOUNT,
                )
            )
        elif kind == "manual":
            add(
                Snapshot(
                    f"manual-{cid}-{i}",
                    cid,
                    "manual",
                    "available",
                    past(),
                    {"owner": "dba"} if draw(_BOOL) else {},
                    draw(_ACCOUNTS),
                )
            )
        else:  # deleted-record: the worker deleted it; an untagged namesake may be present
            rec = copy_record(pol, cid, i) if draw(_BOOL) else create_record(pol, cid)
            owned[rec.snapshot_id] = replace(rec, deleted_at=now - timedelta(days=1))
            if draw(_BOOL):
                assert rec.data_time is not None
                add(
                    Snapshot(
                        rec.snapshot_id,
                        rec.cluster,
                        "manual",
                        "available",
                        rec.data_time,
                        {},
                        draw(_ACCOUNTS),
                    )
                )

    grants: list[GrantRecord] = []
    targets = sorted({*snapshots, *owned})
    if targets:
        pairs = {
            (targets[draw(_INDEX) % len(targets)], draw(_GRANTEE)) for _ in range(draw(_GRANTS))
        }
        for sid, acc in sorted(pairs):
            granted = now - timedelta(hours=draw(_GRANT_AGE))
            revoked = None
            if draw(_D4) == 0:
                revoked = granted + timedelta(hours=draw(_COUNT))
            grants.append(GrantRecord(sid, acc, granted, revoked))
    for _ in range(draw(_D4) if targets else 0):
        sid = targets[draw(_INDEX) % len(targets)]
        kind = draw(_PENDING_KIND)
        grantee = draw(_SHARE_ACC) if kind in ("share", "revoke") else None
        owning = draw(_OWNING)
        pending.append(
            PendingEntry(
                len(pending) + 1, f"{owning}|{kind}|{sid}", owning, kind, sid, "prod-a", grantee
            )
        )
    account = draw(_ACCOUNT)
    return Estate(now, clusters, snapshots, State(owned, tuple(grants), tuple(pending)), account)


scenario = st.tuples(policies_st, estate_st())


# -- helpers ----------------------------------------------------------------------------


def planned(policies: Sequence[Policy], e: Estate) -> Plan:
    return plan([p.core for p in policies], e.inventory, e.state, e.now, account=e.account)


def pending_made(state: State) -> dict[str, PendingEntry]:
    return {p.snapshot_id: p for p in state.pending if p.kind in ("create", "copy")}


def owner(e: Estate, snap: Snapshot) -> str | None:
    own = owner_of(snap, e.state, pending_made(e.state), e.account)
    return own.record.policy if own is not None else None


def data_time(e: Estate, snap: Snapshot) -> datetime:
    """The data time the planner must use: the record's, else the source's, else its own."""
    own = owner_of(snap, e.state, pending_made(e.state), e.account)
    assert own is not None
    if own.record.data_time is not None:
        return own.record.data_time
    src = e.inventory.snapshots.get(own.record.source_id or "")
    return src.create_time if src is not None else snap.create_time


def groups(e: Estate, policy: str) -> dict[str, list[Snapshot]]:
    """The available snapshots ``policy`` owns, per cluster (what retention counts)."""
    out: dict[str, list[Snapshot]] = defaultdict(list)
    for s in e.inventory.snapshots.values():
        if s.available and owner(e, s) == policy:
            out[s.cluster].append(s)
    return out


def by_policy(policies: Sequence[Policy]) -> dict[str, Policy]:
    return {p.name: p for p in policies}


# -- (a) .. (e) ---------------------------------------------------------------------------


@property_test("a-ownership", scenario)
def test_only_copies_read_what_the_policy_does_not_own(case: tuple[list[Policy], Estate]) -> None:
    """(a) Every tag/share/revoke/delete targets a snapshot the action's policy owns (never
    an automated one, a look-alike, a forged tag or another account's); a copy reads an
    available automated snapshot and a create or copy makes a new, valid id."""
    policies, e = case
    p = planned(policies, e)
    snaps = e.inventory.snapshots
    for a in (*p.actions, *p.drift):
        assert ids.is_valid_snapshot_id(a.snapshot), a
        if a.kind in ("copy", "create"):
            assert a.snapshot not in snaps, a
            assert a.cluster in e.inventory.clusters, a
            if a.kind == "copy":
                src = snaps[a.source or ""]
                assert src.type == "automated" and src.available and src.cluster == a.cluster
            continue
        snap = snaps[a.snapshot]
        assert snap.type == "manual", a
        assert owner(e, snap) == a.policy, a


@property_test("b-revoke-first", scenario)
def test_every_authorized_account_is_revoked_before_the_delete(
    case: tuple[list[Policy], Estate],
) -> None:
    """(b) For each delete, every account in AccountsWithRestoreAccess has a revoke of that
    snapshot earlier in the plan; nothing is shared that is being deleted."""
    policies, e = case
    p = planned(policies, e)
    for i, a in enumerate(p.actions):
        if a.kind != "delete":
            continue
        earlier = {(b.snapshot, b.account) for b in p.actions[:i] if b.kind == "revoke"}
        for acc in e.inventory.snapshots[a.snapshot].accounts:
            assert (a.snapshot, acc) in earlier, (a, acc)
        assert not [b for b in p.actions if b.kind == "share" and b.snapshot == a.snapshot]


@property_test("c-keep-last", scenario)
def test_never_below_keep_last(case: tuple[list[Policy], Estate]) -> None:
    """(c) Per (policy, cluster), the ``keep_last`` newest available owned snapshots (by data
    time, ties by id) are never deleted, so at least that many remain."""
    policies, e = case
    p = planned(policies, e)
    deleted = {a.snapshot for a in p.actions if a.kind == "delete"}
    for pol in policies:
        keep = pol.retention.keep_last
        if keep is None:
            continue
        for snaps in groups(e, pol.name).values():
            newest = sorted(snaps, key=lambda s: (data_time(e, s), s.id), reverse=True)
            floor = newest if keep == -1 else newest[:keep]
            assert not deleted & {s.id for s in floor}, (pol.name, keep)
            remaining = len(snaps) - len(deleted & {s.id for s in snaps})
            assert remaining >= len(floor)


@property_test("d-cap-oldest", scenario)
def test_deletes_are_capped_and_the_oldest_expired_go_first(
    case: tuple[list[Policy], Estate],
) -> None:
    """(d) Deletes per policy <= max_deletes_per_run; they are exactly the oldest of the
    expired (retention over the available owned snapshots, held ones excepted)."""
    policies, e = case
    p = planned(policies, e)
    for pol in policies:
        expired: list[tuple[datetime, str]] = []
        for snaps in groups(e, pol.name).values():
            by_id = {s.id: s for s in snaps}
            cands = [Candidate(s.id, data_time(e, s)) for s in snaps]
            for v in evaluate(cands, rules_of(pol.core), e.now):
                if not v.kept and pol.hold_tag not in by_id[v.id].tags:
                    expired.append((v.data_time, v.id))
        expired.sort()
        deletes = [a.snapshot for a in p.actions if a.kind == "delete" and a.policy == pol.name]
        cap = pol.limits.max_deletes_per_run
        assert len(deletes) <= cap
        assert sorted(deletes) == sorted(sid for _, sid in expired[:cap]), pol.name


@property_test("e-hold", scenario)
def test_held_snapshot_is_never_revoked_or_deleted(case: tuple[list[Policy], Estate]) -> None:
    """(e) A snapshot carrying its policy's hold tag is never revoked nor deleted."""
    policies, e = case
    p = planned(policies, e)
    pols = by_policy(policies)
    for a in p.actions:
        if a.kind in ("revoke", "delete"):
            assert pols[a.policy].hold_tag not in e.inventory.snapshots[a.snapshot].tags, a


# -- (f) determinism ------------------------------------------------------------------------


def shuffled(e: Estate, rnd: random.Random) -> Estate:
    def mix(items: Sequence[Any]) -> list[Any]:
        out = list(items)
        rnd.shuffle(out)
        return out

    inv = e.inventory
    return Estate(
        e.now,
        dict(mix(list(inv.clusters.items()))),
        dict(mix(list(inv.snapshots.items()))),
        State(
            dict(mix(list(e.state.owned.items()))),
            tuple(mix(e.state.grants)),
            tuple(mix(e.state.pending)),
        ),
        e.account,
    )


@property_test("f-deterministic", scenario, st.randoms(use_true_random=False))
def test_plan_does_not_depend_on_input_order(
    case: tuple[list[Policy], Estate], rnd: random.Random
) -> None:
    """(f) Shuffling the inventory's and the state's order gives an equal plan."""
    policies, e = case
    assert planned(policies, shuffled(e, rnd)) == planned(policies, e)


# -- (g) convergence ------------------------------------------------------------------------


def _upsert(owned: dict[str, OwnedRecord], rec: OwnedRecord) -> None:
    """StateStore.record_owned: fields the new record leaves None keep their stored value."""
    old = owned.get(rec.snapshot_id)
    if old is not None:
        rec = replace(
            rec,
            source_id=rec.source_id if rec.source_id is not None else old.source_id,
            data_time=rec.data_time if rec.data_time is not None else old.data_time,
            fire_time=rec.fire_time if rec.fire_time is not None else old.fire_time,
            deleted_at=rec.deleted_at if rec.deleted_at is not None else old.deleted_at,
        )
    owned[rec.snapshot_id] = rec


def start_tick(policies: Sequence[Policy], e: Estate) -> Estate:
    """What the engine does before planning: complete the interrupted creates/copies whose
    snapshot exists (``apply.reconcile_pending``), and adopt what the tags prove
    (``engine._adopt``)."""
    owned = dict(e.state.owned)
    pending = []
    for p in e.state.pending:
        snap = e.inventory.snapshots.get(p.snapshot_id)
        made = p.kind in ("create", "copy") and snap is not None and snap.type == "manual"
        if made and snap is not None and snap.cluster == p.cluster:
            src = e.inventory.snapshots.get(p.source_id or "")
            data = (src.create_time if src else None) if p.kind == "copy" else snap.create_time
            made_for: MadeFor = "copy" if p.kind == "copy" else "create"
            rec = OwnedRecord(
                p.snapshot_id, p.policy, p.cluster, made_for, data, source_id=p.source_id
            )
            _upsert(owned, rec)
            continue
        pending.append(p)
    e = Estate(
        e.now,
        dict(e.inventory.clusters),
        dict(e.inventory.snapshots),
        State(owned, e.state.grants, tuple(pending)),
        e.account,
    )
    names = {p.name for p in policies}
    cores = [p.core for p in policies]
    for sid, rec in owned_snapshots(cores, e.inventory, e.state, e.account).items():
        if sid not in owned and rec.policy in names:
            owned[sid] = rec
    return e


def apply_plan(e: Estate, p: Plan) -> Estate:
    """A pure simulation of a successful ``run``: AWS and the state DB after every action."""
    snaps = dict(e.inventory.snapshots)
    owned = dict(e.state.owned)
    grants = list(e.state.grants)
    owner_account = e.account
    for a in p.actions:
        if a.kind == "copy":
            rec = OwnedRecord(a.snapshot, a.policy, a.cluster, "copy", a.data_time, a.source)
            snaps[a.snapshot] = Snapshot(
                a.snapshot, a.cluster, "manual", "available", e.now, ownership_tags(rec), (),
                owner_account,
            )  # fmt: skip
            _upsert(owned, rec)
        elif a.kind == "create":
            rec = OwnedRecord(
                a.snapshot, a.policy, a.cluster, "create", e.now, fire_time=a.fire_time
            )
            snaps[a.snapshot] = Snapshot(
                a.snapshot, a.cluster, "manual", "available", e.now, ownership_tags(rec), (),
                owner_account,
            )  # fmt: skip
            _upsert(owned, rec)
        elif a.kind == "tag":
            made_for_tag: MadeFor = "copy" if a.source else "create"
            rec = OwnedRecord(
                a.snapshot, a.policy, a.cluster, made_for_tag, a.data_time, a.source, a.fire_time
            )
            snap = snaps[a.snapshot]
            snaps[a.snapshot] = replace(snap, tags={**snap.tags, **ownership_tags(rec)})
            _upsert(owned, rec)
        elif a.kind == "share":
            snap = snaps[a.snapshot]
            assert a.account is not None and a.account not in snap.accounts, a
            snaps[a.snapshot] = replace(snap, accounts=tuple(sorted({*snap.accounts, a.account})))
            if not [g for g in grants if (g.snapshot_id, g.account) == (a.snapshot, a.account)
                    and g.revoked_at is None]:  # fmt: skip
                grants.append(GrantRecord(a.snapshot, a.account, e.now))
        elif a.kind == "revoke":
            snap = snaps[a.snapshot]
            assert a.account in snap.accounts, a
            snaps[a.snapshot] = replace(
                snap, accounts=tuple(x for x in snap.accounts if x != a.account)
            )
            grants = [
                replace(g, revoked_at=e.now)
                if (g.snapshot_id, g.account) == (a.snapshot, a.account) and g.revoked_at is None
                else g
                for g in grants
            ]
        elif a.kind == "delete":
            assert not snaps[a.snapshot].accounts, a  # the executor's guard would refuse
            del snaps[a.snapshot]
            if a.snapshot in owned:
                owned[a.snapshot] = replace(owned[a.snapshot], deleted_at=e.now)
    # Every pending entry is either completed (planned again, same key) or superseded.
    return Estate(
        e.now, dict(e.inventory.clusters), snaps, State(owned, tuple(grants), ()), e.account
    )


def made_by(p: Plan) -> set[str]:
    return {a.snapshot for a in p.actions if a.kind in ("copy", "create")}


@property_test("g-converges", scenario)
def test_applying_the_plan_converges(case: tuple[list[Policy], Estate]) -> None:
    """(g) Apply the plan, plan again at the same ``now``:

    - the second plan makes nothing (no create, copy or tag) and shares only the snapshots
      the first plan made;
    - it revokes and deletes only (1) deletions the cap deferred, or (2) snapshots of a
      (policy, cluster) in which the first plan made a new snapshot, which now counts in
      retention (by design: the older one goes once the newer one exists, not in the same
      run in which the copy might still fail);
    - when neither happened, the second plan is only those shares and the third is empty;
    - in any case the ticks reach an empty plan, without a snapshot made twice or a source
      copied twice.
    """
    policies, e = case
    e = start_tick(policies, e)
    p1 = planned(policies, e)
    made = made_by(p1)
    deferred = {k.snapshot for k in p1.kept if "max_deletes_per_run" in k.reason}
    grown = {(a.policy, a.cluster) for a in p1.actions if a.kind in ("copy", "create")}

    e2 = start_tick(policies, apply_plan(e, p1))
    p2 = planned(policies, e2)
    for a in p2.actions:
        assert a.kind in ("share", "revoke", "delete"), a
        if a.kind == "share":
            assert a.snapshot in made, a
        else:
            assert a.snapshot in deferred or (a.policy, a.cluster) in grown, a
    if not deferred and not grown & {(a.policy, a.cluster) for a in p2.actions}:
        assert all(a.kind == "share" for a in p2.actions)
        e3 = start_tick(policies, apply_plan(e2, p2))
        assert planned(policies, e3).actions == ()

    seen_made: Counter[str] = Counter(made)
    sources: Counter[tuple[str, str | None]] = Counter(
        (a.policy, a.source) for a in p1.actions if a.kind == "copy"
    )
    current, p = e2, p2
    total_owned = len(e.inventory.snapshots) + len(made)
    for _ in range(total_owned + 3):
        if not p.actions:
            break
        current = start_tick(policies, apply_plan(current, p))
        p = planned(policies, current)
        seen_made.update(made_by(p))
        sources.update((a.policy, a.source) for a in p.actions if a.kind == "copy")
    assert p.actions == (), "did not converge"
    assert all(n == 1 for n in seen_made.values()), seen_made
    assert all(n == 1 for n in sources.values()), sources


def test_the_generator_reaches_every_kind_of_action() -> None:
    """The properties are only as good as the estates: make sure the generated plans hold
    every action kind, deferred deletes and held snapshots (so no property is vacuous)."""
    seen: Counter[str] = Counter()

    # Derandomized: a census of 200 random estates missed a rare kind (create, copy) about
    # once in 20 runs; a fixed sample keeps this check about the generator, not about luck.
    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(scenario)
    def census(case: tuple[list[Policy], Estate]) -> None:
        policies, e = case
        p = planned(policies, e)
        seen.update(a.kind for a in p.actions)
        seen.update("drift" for _ in p.drift)
        seen.update("deferred" for k in p.kept if "max_deletes_per_run" in k.reason)
        seen.update("held" for k in p.kept if k.held)
        seen.update(
            "delete-of-shared"
            for a in p.actions
            if a.kind == "delete" and e.inventory.snapshots[a.snapshot].accounts
        )

    census()
    CHECKED["census"] += 200
    wanted = ("tag", "create", "copy", "share", "revoke", "delete", "drift", "deferred", "held")
    missing = [k for k in (*wanted, "delete-of-shared") if not seen[k]]
    assert not missing, (missing, seen)


# -- renamed policies (formerly) ----------------------------------------------------------------


@property_test("h-formerly", scenario)
def test_a_rename_with_formerly_never_deletes_or_makes_more(
    case: tuple[list[Policy], Estate],
) -> None:
    """(h) Renaming every policy P to ``P-renamed`` with ``formerly: [P]`` never deletes a
    snapshot the plan under the old names would not delete, makes nothing the old names
    would not make (no source copied again, no extra create), and every delete, share and
    revoke targets a snapshot the renamed policy owns through ``formerly``."""
    policies, e = case
    before = planned(policies, e)
    renamed = [
        p.model_copy(update={"name": f"{p.name}-renamed", "formerly": [p.name]}) for p in policies
    ]
    back = {f"{p.name}-renamed": p.name for p in policies}
    renames = {p.name: f"{p.name}-renamed" for p in policies}
    after = plan([p.core for p in renamed], e.inventory, e.state, e.now, account=e.account)

    def of(p: Plan, kinds: tuple[str, ...], rename: dict[str, str]) -> set[tuple[str, ...]]:
        return {
            (rename.get(a.policy, a.policy), a.cluster, a.source or a.snapshot)
            for a in p.actions
            if a.kind in kinds
        }

    assert of(after, ("delete",), back) <= of(before, ("delete",), {})
    made_before = {(pol, c, s) for pol, c, s in of(before, ("copy",), {})}
    assert of(after, ("copy",), back) <= made_before
    creates = {(a.policy, a.cluster) for a in before.actions if a.kind == "create"}
    assert {(back[a.policy], a.cluster) for a in after.actions if a.kind == "create"} <= creates
    for a in after.actions:
        if a.kind in ("delete", "share", "revoke"):
            snap = e.inventory.snapshots[a.snapshot]
            own = owner_of(snap, e.state, pending_made(e.state), e.account, renames)
            assert own is not None and own.record.policy == a.policy, a
