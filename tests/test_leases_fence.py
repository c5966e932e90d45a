"""Leases of a fleet: per (policy, target, region) names, the fencing counter (raised by each
new holder, kept by renewals and across a release), the check with a margin before a mutation,
and PostgreSQL's SKIP LOCKED acquisition (skips when ``.ci/services`` is not running)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from snapworker.adapters.store.repository import StateStore, open_store
from snapworker.core.model import Action
from snapworker.errors import SnapworkerError
from snapworker.service.leases import LeaseLost, PolicyLeases, lease_name
from tests.fakes import FakeStore
from tests.pg_support import pg_database  # noqa: F401  (a fixture: store_url on PostgreSQL)

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=2)
NAME = lease_name("nightly", "dr-a/eu-west-1")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_lease_names_name_the_policy_and_the_pair() -> None:
    assert NAME == "policy:nightly/dr-a/eu-west-1"
    assert lease_name("nightly") == "policy:nightly"


@pytest.fixture(params=["sql", "fake"])
def leases_store(request: pytest.FixtureRequest, store_url: str) -> object:
    if request.param == "fake":
        return FakeStore()
    return request.getfixturevalue("store")


def test_the_fence_goes_up_with_each_new_holder_and_never_back(leases_store: StateStore) -> None:
    s = leases_store
    assert s.acquire_lease(NAME, "a", TTL, T0)
    assert s.lease_fence(NAME, "a", T0) == 1
    assert s.acquire_lease(NAME, "a", TTL, T0 + TTL / 2)  # a renewal by its holder
    assert s.renew_lease(NAME, "a", TTL, T0 + TTL)
    assert s.lease_fence(NAME, "a", T0 + TTL) == 1
    assert not s.acquire_lease(NAME, "b", TTL, T0 + TTL)  # held
    assert s.lease_fence(NAME, "b", T0 + TTL) is None
    taken = T0 + 3 * TTL  # a's lease expired: b takes it over
    assert s.acquire_lease(NAME, "b", TTL, taken)
    assert s.lease_fence(NAME, "b", taken) == 2
    assert s.lease_fence(NAME, "a", taken) is None
    assert not s.renew_lease(NAME, "a", TTL, taken)  # a woke up: not its lease any more
    assert s.release_lease(NAME, "b")
    assert s.lease_holder(NAME) is None
    assert s.lease_fence(NAME, "b", taken) is None
    assert not s.renew_lease(NAME, "b", TTL, taken)
    assert s.acquire_lease(NAME, "b", TTL, taken)  # released: a fresh acquisition
    assert s.lease_fence(NAME, "b", taken) == 3


def test_lease_fence_needs_the_margin_left(leases_store: StateStore) -> None:
    s = leases_store
    assert s.acquire_lease(NAME, "a", TTL, T0)
    margin = TTL / 4
    assert s.lease_fence(NAME, "a", T0 + TTL - margin - timedelta(seconds=1), margin) == 1
    assert s.lease_fence(NAME, "a", T0 + TTL - margin, margin) is None
    assert s.lease_fence(NAME, "a", T0 + TTL - timedelta(seconds=1)) == 1


def test_the_released_row_keeps_its_fence_in_the_database(store: StateStore) -> None:
    assert store.acquire_lease(NAME, "a", TTL, T0)
    assert store.release_lease(NAME, "a")
    with store.database.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT name, fence FROM lease")).all()
    assert [tuple(r) for r in rows] == [(NAME, 1)]


def test_check_returns_the_fence_and_raises_once_the_lease_is_lost(store: StateStore) -> None:
    clock = Clock(T0)
    mine = PolicyLeases(store, "host-a:1:aa", TTL, clock, pair_key="dr-a/eu-west-1")
    assert mine.acquire(["nightly"]) == (["nightly"], [])
    try:
        assert store.lease_holder(NAME) == "host-a:1:aa"
        assert mine.check("nightly") == 1
        clock.now = T0 + TTL / 3  # the heartbeat's beat: renewed, the check passes
        mine.renew()
        clock.now = T0 + TTL / 3 + TTL * 2 / 3
        assert mine.check("nightly") == 1
        # Frozen past its lease: another replica took over.
        clock.now = T0 + 5 * TTL
        assert store.acquire_lease(NAME, "host-b:2:bb", TTL, clock.now)
        with pytest.raises(LeaseLost) as lost:
            mine.check("nightly")
        assert isinstance(lost.value, SnapworkerError)
        assert "nightly" in str(lost.value) and "dr-a/eu-west-1" in str(lost.value)
        assert mine.any_lost
        with pytest.raises(LeaseLost):
            mine.check("not-acquired")
    finally:
        mine.release()
    assert store.lease_holder(NAME) == "host-b:2:bb"  # our release leaves its lease alone


def test_check_fails_within_the_margin_of_expiry(store: StateStore) -> None:
    clock = Clock(T0)
    mine = PolicyLeases(store, "host-a:1:aa", TTL, clock, pair_key="home/us-east-1")
    mine.acquire(["nightly"])
    try:
        clock.now = T0 + TTL - TTL / 4  # no renewal came (frozen): too little left
        with pytest.raises(LeaseLost):
            mine.check("nightly")
    finally:
        mine.release()


def test_a_process_frozen_past_its_local_deadline_fails_the_check_without_asking(
    store: StateStore,
) -> None:
    """Frozen (SIGSTOP) after the state DB answered, or while it answered: the state DB may
    still say "yours" (nobody took over yet, the wall clock of the test did not move), but the
    process's own monotonic clock moved past the acquisition + TTL - margin: no mutation."""
    ticks = [1000.0]
    mine = PolicyLeases(
        store, "host-a:1:aa", TTL, Clock(T0), pair_key="home/us-east-1", monotonic=lambda: ticks[0]
    )
    mine.acquire(["nightly"])
    try:
        ticks[0] += (TTL - TTL / 4).total_seconds() - 1
        assert mine.check("nightly") >= 1  # just inside
        ticks[0] += 2  # frozen a little longer: past the deadline
        with pytest.raises(LeaseLost):
            mine.check("nightly")
        assert mine.any_lost
    finally:
        mine.release()


def test_a_renewal_moves_the_local_deadline(store: StateStore) -> None:
    ticks = [1000.0]
    mine = PolicyLeases(
        store, "host-a:1:aa", TTL, Clock(T0), pair_key="home/us-east-1", monotonic=lambda: ticks[0]
    )
    mine.acquire(["nightly"])
    try:
        ticks[0] += 60
        mine.renew()  # the heartbeat's renewal, confirmed by the state DB at 1060
        ticks[0] += (TTL - TTL / 4).total_seconds() - 1
        assert mine.check("nightly") >= 1
    finally:
        mine.release()


def test_the_journal_records_the_fence(store: StateStore) -> None:
    pair = store.scoped("dr-a", "210987654321", "eu-west-1")
    run = pair.begin_run("run", 1, T0)
    act = Action(policy="nightly", cluster="c", kind="create", snapshot="s-1", reason="due")
    entry = pair.journal_start(run, act, T0, fence=4)
    assert pair.journal_start(run, act, T0, fence=5) == entry  # reused: the new fence
    assert [(j.id, j.fence) for j in pair.journal()] == [(entry, 5)]


def test_two_pairs_lease_the_same_policy_independently(store: StateStore) -> None:
    a = PolicyLeases(store, "host-a:1:aa", TTL, Clock(T0), pair_key="home/us-east-1")
    b = PolicyLeases(store, "host-b:2:bb", TTL, Clock(T0), pair_key="home/eu-west-1")
    try:
        assert a.acquire(["nightly"]) == (["nightly"], [])
        assert b.acquire(["nightly"]) == (["nightly"], [])
    finally:
        a.release()
        b.release()


# --------------------------------------------------------------------- PostgreSQL


def test_acquire_skips_a_row_another_acquirer_has_locked(
    pg_database: str,  # noqa: F811  (the fixture imported above)
) -> None:
    """PostgreSQL: while another transaction holds the lease row locked (it is taking or
    renewing it), an acquisition answers False at once instead of waiting for it."""
    from tests import pg_support

    pg_support.clean(pg_database)
    store = open_store(pg_support.url_of(pg_database))
    try:
        assert store.acquire_lease(NAME, "a", TTL, T0)
        assert store.release_lease(NAME, "a")  # free, but about to be locked by another
        other = pg_support.connect(pg_database)
        try:
            other.execute("SELECT * FROM lease WHERE name = %s FOR UPDATE", (NAME,))
            answer: list[bool] = []
            worker = threading.Thread(
                target=lambda: answer.append(store.acquire_lease(NAME, "b", TTL, T0)),
                daemon=True,
            )
            started = time.monotonic()
            worker.start()
            worker.join(timeout=10)
            waited = time.monotonic() - started
            assert answer == [False], "the acquisition waited for the row lock"
            assert waited < 5
        finally:
            other.rollback()
            other.close()
        assert store.acquire_lease(NAME, "b", TTL, T0)  # unlocked: free again
        assert store.lease_fence(NAME, "b", T0) == 2
    finally:
        store.close()
