"""One worker at a time per policy: the lease in the state DB, its expiry, its loss, and a
tick that skips a policy another process holds (and a dry run that takes no lease)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapworker.adapters.store.repository import StateStore, open_store
from snapworker.service.leases import PolicyLeases, lease_name
from tests.pg_support import pg_database  # noqa: F401  (a fixture: store_url on PostgreSQL)
from tests.test_daemon import CONFIG, automated, aws, make_cluster, write_config  # noqa: F401

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_held_lease_is_refused_until_it_expires(store: StateStore) -> None:
    a = PolicyLeases(store, "host-a:1:aa", TTL, Clock(T0))
    assert a.acquire(["p1", "p2"]) == (["p1", "p2"], [])
    b_clock = Clock(T0 + TTL / 2)
    b = PolicyLeases(store, "host-b:2:bb", TTL, b_clock)
    assert b.acquire(["p1", "p3"]) == (["p3"], ["p1"])
    b.release()
    # host-a crashes (no release, no renewal): after the TTL its leases are taken over
    b_clock.now = T0 + TTL + timedelta(seconds=1)
    assert b.acquire(["p1"]) == (["p1"], [])
    b.release()


def test_renewal_keeps_a_lease_and_a_lost_one_is_noticed(store: StateStore) -> None:
    clock = Clock(T0)
    a = PolicyLeases(store, "host-a:1:aa", TTL, clock)
    assert a.acquire(["p1"]) == (["p1"], [])
    clock.now = T0 + TTL * 0.9
    a.renew()  # what the heartbeat thread does every TTL/3
    thief = Clock(T0 + TTL * 1.5)  # past the first expiry, not past the renewed one
    assert not store.acquire_lease(lease_name("p1"), "host-b:2:bb", TTL, thief())
    assert not a.any_lost
    # a was suspended longer than the TTL: b takes over, and a's next renewal sees it
    thief.now = T0 + TTL * 3
    assert store.acquire_lease(lease_name("p1"), "host-b:2:bb", TTL, thief())
    a.renew()
    assert a.any_lost
    a.release()  # releases nothing of b's
    assert not store.acquire_lease(lease_name("p1"), "host-c:3:cc", TTL, thief())


def test_a_tick_skips_a_leased_policy_and_plans_without_a_lease(aws: Any, tmp_path: Path) -> None:  # noqa: F811
    from snapworker.config import load_config
    from snapworker.sandbox import moto_ext
    from snapworker.service.bootstrap import bootstrap
    from snapworker.service.tick import tick

    cfg = load_config(write_config(tmp_path))
    rt = bootstrap(cfg, client=aws)
    make_cluster(aws, "prod-a")
    automated("prod-a", 1)
    now = datetime.now(UTC)
    assert rt.store.acquire_lease(lease_name("prod-nightly"), "daemon-x", TTL, now)

    result = tick(rt, ["prod-nightly"])
    assert result.skipped == ["prod-nightly"]
    assert result.outcomes == [] and result.exit_code == 1
    assert "CopyClusterSnapshot" not in moto_ext.call_counts()
    assert rt.store.recent_runs() == []  # nothing was worked on

    dry = tick(rt, ["prod-nightly"], dry_run=True)  # plan takes no lease
    assert [a.kind for a in dry.plan.actions] == ["copy"]

    both = tick(rt)  # the other policy is free: it runs; the leased one is skipped
    assert both.skipped == ["prod-nightly"]

    rt.store.release_lease(lease_name("prod-nightly"), "daemon-x")
    done = tick(rt, ["prod-nightly"])
    assert [o.outcome for o in done.outcomes] == ["copied"] and done.exit_code == 0
    # the tick released its lease: another holder can take it at once
    assert rt.store.acquire_lease(lease_name("prod-nightly"), "run-y", TTL, datetime.now(UTC))
    rt.store.close()


def test_the_lease_of_a_killed_process_on_this_host_is_taken_over_at_once(
    store: StateStore,
) -> None:
    import os
    import socket
    import subprocess
    import sys

    from snapworker.service.leases import _pid_namespace, new_holder

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    here = f"{socket.gethostname()}|{_pid_namespace()}"
    dead = f"{here}|{int(child.stdout)}|dead0001"
    alive = f"{here}|{os.getppid()}|alive001"
    elsewhere = f"other-host|{_pid_namespace()}|{int(child.stdout)}|else0001"
    now = datetime.now(UTC)
    for name, holder in (("p-dead", dead), ("p-alive", alive), ("p-else", elsewhere)):
        assert store.acquire_lease(lease_name(name), holder, timedelta(minutes=10), now)
    me = PolicyLeases(store, new_holder(), TTL)
    assert me.acquire(["p-dead", "p-alive", "p-else"]) == (["p-dead"], ["p-alive", "p-else"])
    me.release()


# ------------------------------------------- runs whose process is gone (issue 18)


def test_a_run_whose_process_is_gone_is_shown_and_then_recorded_interrupted(
    store_url: str,
) -> None:
    """A run row never finished (its process was killed) is `interrupted`, with the counts of
    its journal, once its process is gone: a dead pid of this host, an expired lease, or no
    lease at all (a row of a version without run leases). A live run, here or on another host
    within its lease, stays `running`; the next tick records the gone ones."""
    import os
    import socket
    import subprocess
    import sys

    from snapworker.core.model import Action
    from snapworker.service.leases import _pid_namespace

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(child.stdout)
    here = f"{socket.gethostname()}|{_pid_namespace()}"
    store = open_store(store_url)
    now = datetime.now(UTC)
    later = now + timedelta(minutes=10)

    def run(pid: int, holder: str | None, expires: datetime | None) -> int:
        return store.begin_run("run", pid, T0, holder=holder, lease_expires=expires)

    dead = run(dead_pid, f"{here}|{dead_pid}|dead0001", later)
    done = store.journal_start(dead, Action("p", "c", "copy", "s1", "why", source="a1"), T0)
    store.journal_finish(done, "completed", "copied", None, T0)
    bad = store.journal_start(dead, Action("p", "c", "copy", "s2", "why", source="a2"), T0)
    store.journal_finish(bad, "failed", None, "AccessDenied", T0)
    store.journal_start(dead, Action("p", "c", "copy", "s3", "why", source="a3"), T0)  # in flight
    expired = run(4242, "other-host|1|4242|exp00001", now - timedelta(seconds=1))
    unleased = run(4343, None, None)
    alive_here = run(os.getppid(), f"{here}|{os.getppid()}|alive001", later)
    elsewhere = run(dead_pid, f"other-host|{_pid_namespace()}|{dead_pid}|else0001", later)
    finished = run(os.getpid(), f"{here}|{os.getpid()}|mine0001", later)
    store.finish_run(finished, "ok", 0, 0, {}, None, T0)

    views = {v.id: v for v in store.recent_runs(now=now)}
    assert {i: v.status for i, v in views.items()} == {
        dead: "interrupted",
        expired: "interrupted",
        unleased: "interrupted",
        alive_here: "running",
        elsewhere: "running",
        finished: "ok",
    }
    gone = views[dead]
    assert (gone.actions_ok, gone.actions_failed) == (1, 1)
    assert gone.error is not None and f"pid {dead_pid}" in gone.error
    assert gone.finished_at is None
    # Finishing a run gives its lease back.
    assert store.lease_holder(f"run:{finished}") is None

    assert store.interrupt_gone_runs(T0 + timedelta(hours=1), now=now) == 3
    after = {v.id: v for v in store.recent_runs(now=now)}
    assert after[dead].status == "interrupted" and after[dead].finished_at is not None
    assert (after[dead].actions_ok, after[dead].actions_failed) == (1, 1)
    assert after[alive_here].status == "running" and after[elsewhere].status == "running"
    assert store.interrupt_gone_runs(T0 + timedelta(hours=2), now=now) == 0
    # A finished row is now prunable like any other.
    assert store.prune(T0 + timedelta(hours=3)) >= 3
    store.close()
