"""The tick's record of what changed outside snapworker (``service.gone``), on the shared
fakes: only after a complete listing, never for what the worker deleted itself, only for the
policies the tick works on (and those no longer configured), and a snapshot listed again is
live again. The end-to-end view (warnings, status) is tests/test_outside_changes.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from snapworker.adapters.aws.redshift import AwsError
from snapworker.config import Config
from snapworker.core.model import DELETED_OUTSIDE, REVOKED_OUTSIDE, OwnedRecord, Snapshot
from snapworker.core.ownership import parse_utc
from snapworker.service.tick import Runtime, tick
from tests import factories
from tests.factories import NOW, automated, cluster, days_ago, owned_copy
from tests.fakes import FakeGateway, FakeStore

ACC = "111122223333"
ONE = {"max_age_days": 35, "keep_last": 1}


class Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def info(self, *args: Any, **kw: Any) -> None:
        pass

    def error(self, *args: Any, **kw: Any) -> None:
        pass

    def warning(self, event: str, **kw: Any) -> None:
        self.warnings.append((event, kw))


class BrokenListing(FakeGateway):
    """A listing that fails part way (a page refused after the retries)."""

    def list_snapshots(
        self, progress: Callable[[int, bool], None] | None = None
    ) -> dict[str, Snapshot]:
        raise AwsError("DescribeClusterSnapshots", "InternalFailure", "page 3 failed")


def _copies(*ages: float, accounts: tuple[str, ...] = ()) -> list[Snapshot]:
    return [owned_copy("prod-nightly", automated("prod-a", days_ago(d)), accounts) for d in ages]


def _record(store: FakeStore, snap: Snapshot, policy: str = "prod-nightly") -> None:
    store.record_owned(
        OwnedRecord(
            snap.id,
            policy,
            snap.cluster,
            "copy",
            parse_utc(snap.tags["snapworker:source-time"]),
            snap.tags["snapworker:source"],
        ),
        at=NOW,
    )


def _rt(
    gw: FakeGateway, store: FakeStore, *policies: str, **over: Any
) -> tuple[Runtime[FakeStore], Log]:
    names = policies or ("prod-nightly",)
    cfg = Config(policies=[factories.policy(n, copy_automated=False, **over) for n in names])
    log = Log()
    return Runtime(cfg, gw, store, lambda: NOW, log), log


def test_a_failed_listing_records_nothing_a_complete_one_records_the_missing() -> None:
    kept, gone = _copies(1, 2)
    store = FakeStore()
    _record(store, kept)
    _record(store, gone)
    store.record_grant(gone.id, ACC, days_ago(2))
    broken = BrokenListing([kept], [cluster()])
    rt, _ = _rt(broken, store, share={"accounts": []})
    with pytest.raises(AwsError):
        tick(rt)
    assert store.owned[gone.id].deleted_at is None
    assert [g.revoked_at for g in store.grants] == [None]

    rt, log = _rt(FakeGateway([kept], [cluster()]), store, share={"accounts": []})
    result = tick(rt)
    assert result.gone is not None
    assert [r.snapshot_id for r in result.gone.snapshots] == [gone.id]
    assert result.gone.grants_of_snapshots == 1
    rec = store.owned[gone.id]
    assert (rec.deleted_at, rec.deleted_reason) == (NOW, DELETED_OUTSIDE)
    assert store.grants[0].revoked_at == NOW
    assert store.owned[kept.id].deleted_at is None
    assert [e for e, _ in log.warnings] == ["snapshot deleted outside snapworker"]
    # Recorded once: the next tick finds nothing new.
    again, _ = _rt(FakeGateway([kept], [cluster()]), store, share={"accounts": []})
    assert tick(again).gone is None


def test_what_the_worker_deletes_itself_is_never_deleted_outside() -> None:
    copies = _copies(1, 2, 3, 40)
    store = FakeStore()
    for c in copies:
        _record(store, c)
    gw = FakeGateway(copies, [cluster()])
    rt, _ = _rt(gw, store, share={"accounts": []})
    first = tick(rt)
    assert [o.action.kind for o in first.outcomes] == ["delete"]
    assert first.gone is None
    second = tick(rt)
    assert second.gone is None
    old = store.owned[copies[3].id]
    assert old.deleted_at is not None and old.deleted_reason is None


def test_a_pending_delete_is_the_journals_not_outside() -> None:
    copies = _copies(1, 40)
    store = FakeStore()
    for c in copies:
        _record(store, c)
    rt, _ = _rt(FakeGateway(copies, [cluster()]), store, share={"accounts": []}, retention=ONE)
    plan = tick(rt, dry_run=True).plan
    delete = next(a for a in plan.actions if a.kind == "delete")
    store.journal_start(1, delete, NOW)  # the run was killed after its DeleteClusterSnapshot
    after_crash = FakeGateway(copies[:1], [cluster()])
    rt, _ = _rt(after_crash, store, share={"accounts": []}, retention=ONE)
    result = tick(rt)
    assert result.reconciled == 1 and result.gone is None
    assert store.owned[copies[1].id].deleted_reason is None


def test_only_the_ticks_policies_and_removed_ones_are_compared() -> None:
    mine, theirs, orphan = _copies(1, 2, 3)
    store = FakeStore()
    _record(store, mine)
    _record(store, theirs, "other")
    _record(store, orphan, "removed")
    rt, _ = _rt(
        FakeGateway([], [cluster()]), store, "prod-nightly", "other", share={"accounts": []}
    )
    result = tick(rt, ["prod-nightly"])
    assert result.gone is not None
    assert sorted(r.snapshot_id for r in result.gone.snapshots) == sorted([mine.id, orphan.id])
    assert store.owned[theirs.id].deleted_at is None


def test_a_grant_revoked_by_hand_is_closed_and_a_snapshot_listed_again_is_live() -> None:
    shared, back = _copies(1, 2, accounts=())
    store = FakeStore()
    _record(store, shared)
    _record(store, back)
    store.record_grant(shared.id, ACC, days_ago(1))
    store.record_gone([back.id], [], days_ago(0.5))
    rt, log = _rt(FakeGateway([shared, back], [cluster()]), store, share={"accounts": []})
    result = tick(rt)
    assert result.gone is not None and result.gone.grants == ((shared.id, ACC),)
    grant = store.grants[0]
    assert (grant.revoked_at, grant.revoked_reason) == (NOW, REVOKED_OUTSIDE)
    rec = store.owned[back.id]
    assert (rec.deleted_at, rec.deleted_reason) == (None, None)
    events = [e for e, _ in log.warnings]
    assert "grant revoked outside snapworker" in events
    assert "snapshot listed again: it was recorded as deleted outside snapworker" in events
