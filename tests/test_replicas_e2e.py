"""Replicas: three ``snapworker daemon`` processes on one PostgreSQL state DB (``.ci/services``)
share a fleet of eight pairs (four accounts, each by AssumeRole, in two regions) on moto's
server, and one of them is frozen (SIGSTOP) in the middle of a CopyClusterSnapshot, for longer
than its lease, then resumed.

The freeze is exact, not a guess at timing: the server (in this process) processes that copy,
then stops its sender before answering (:class:`tests.e2e_support.FreezeOnCall`; the sender is
known from its assumed role's session name, ``snapworker-<host>-<pid>``). So the frozen
replica holds the pair's lease, AWS has its copy, and the replica has not heard back.

What it proves, counted on the server per account and region:

- another replica takes the frozen replica's pair over within one lease period (while it is
  still frozen), with a higher fencing counter in the journal;
- every pair converges (each automated snapshot copied once and shared once);
- no CopyClusterSnapshot and no AuthorizeSnapshotAccess is sent twice for the same
  (account, region, snapshot[, grantee]): not by the takeover, not by the frozen replica once
  it wakes (its in-flight call completes; it starts nothing more under the lost lease);
- the work spread over the replicas (the journal's runs name more than one process);
- three replicas migrate one fresh PostgreSQL database at start without stepping on each
  other, and each exits 0 on SIGTERM.

Not covered: a replica frozen in the few milliseconds between its last lease check (a
state DB round trip, made right before each request is sent) and the request itself still
sends that request when it wakes. Each replica here works one pair at a time, so the freeze
(in a call) never lands there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapworker.sandbox import moto_ext
from tests import pg_support
from tests.e2e_support import (
    FreezeOnCall,
    Sandbox,
    estate,
    role_arn,
    served,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLICY = "prod-nightly"
GRANTEE = "111122223333"
ACCOUNTS = ("410000000001", "410000000002", "410000000003", "410000000004")
REGIONS = ("us-east-1", "eu-west-1")
PAIRS = [(f"acct-{i + 1}", a, r) for i, a in enumerate(ACCOUNTS) for r in REGIONS]
CLUSTER = "prod-a"
AGES = (1, 2, 3)
"""Ages in days of the automated snapshots in every pair: three copies, three shares each."""
LEASE_SECONDS = 5
FROZEN_SECONDS = 16
"""Three times the lease: the frozen replica's leases expire while it cannot renew them, and
another replica's next tick (a poll a second after it skipped the pair, else the 10 s
reconcile) takes the pair over while it is still frozen."""
LATENCY = 0.25
"""Every answer of the server comes this late: ticks take a while, replicas overlap."""
# Each replica works one pair at a time (fleet.max_parallel_targets: 1), so that when it is
# frozen in its call no other thread of it is between a lease check and its request (the
# few milliseconds of a state DB round trip: a process frozen exactly there still sends
# that one request when it wakes; see the module docstring).

TARGET = """\
  - name: {name}
    role_arn: {role}
    regions: [us-east-1, eu-west-1]
"""
CONFIG = """\
state_url: sqlite:///{{db}}
aws:
  region: us-east-1
retry:
  attempts: 4
  wait_initial_seconds: 0
  wait_max_seconds: 0
targets:
{targets}fleet:
  max_parallel_targets: 1
  lease_seconds: {lease}
daemon:
  reconcile_interval_seconds: 10
  poll_creating_seconds: 1
policies:
  - name: {policy}
    select:
      clusters: ["prod-*"]
    copy_automated: true
    share:
      accounts: ["{grantee}"]
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of its own (skips without the server)."""
    try:
        admin = pg_support.connect("postgres", autocommit=True)
    except Exception as e:  # any failure means: not available here
        pytest.skip(f"PostgreSQL test server not reachable ({type(e).__name__})")
    name = f"snapworker_replicas_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with pg_support.connect("postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write_config(box: Sandbox) -> None:
    targets = "".join(TARGET.format(name=t, role=role_arn(a)) for t, a, _ in PAIRS[:: len(REGIONS)])
    box.write_config(
        CONFIG.format(targets=targets, lease=LEASE_SECONDS, policy=POLICY, grantee=GRANTEE)
    )


def seed(box: Sandbox, now: datetime) -> list[str]:
    """The same cluster and automated snapshots in every pair; returns their ids."""
    sources: list[str] = []
    for _, account, region in PAIRS:
        pair = estate(box, account, region)
        pair.cluster(CLUSTER, env="prod")
        ids = [pair.automated(CLUSTER, now - timedelta(days=age)) for age in AGES]
        assert not sources or ids == sources
        sources = ids
    return sources


def owned_now(account: str, region: str) -> dict[str, list[str]]:
    """The policy's snapshots in a pair, read from moto's backend (no request, so neither
    slowed by the latency nor counted): id -> accounts with restore access."""
    be = moto_ext.backend(account, region)
    with moto_ext.common.LOCK:
        snaps = list(be.snapshots.values())
    return {
        s.snapshot_identifier: moto_ext.authorized_accounts(be, s.snapshot_identifier)
        for s in snaps
        if any(t.get("Key") == "snapworker:policy" and t.get("Value") == POLICY for t in s.tags)
        and s.status == "available"
    }


def converged(sources: list[str]) -> bool:
    for _, account, region in PAIRS:
        owned = owned_now(account, region)
        if len(owned) != len(sources) or any(v != [GRANTEE] for v in owned.values()):
            return False
    return True


def alive(daemons: list[tuple[subprocess.Popen[bytes], Path]]) -> bool:
    """True; fails the test (with the logs) if a daemon has exited."""
    if any(p.poll() is not None for p, _ in daemons):
        raise AssertionError("a daemon exited:\n" + _logs(daemons))
    return True


def journal(db: str) -> list[dict[str, Any]]:
    """Every journal entry with its run's pid, as another process sees them."""
    cols = (
        "id",
        "kind",
        "snapshot_id",
        "grantee",
        "status",
        "error",
        "fence",
        "account",
        "region",
        "pid",
    )
    try:
        found = pg_support.query(
            db,
            "SELECT j.id, j.kind, j.snapshot_id, j.account, j.status, j.error, j.fence, "
            "j.owner_account, j.region, r.pid FROM journal j JOIN run r ON r.id = j.run_id "
            "ORDER BY j.id",
        )
    except Exception:  # the schema is not there yet
        return []
    return [dict(zip(cols, row, strict=True)) for row in found]


def start(box: Sandbox, db: str, n: int) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """``n`` daemons on the database ``db``, each logging to its own file."""
    env = box.env(SNAPWORKER_STATE_URL=pg_support.url_of(db))
    out = []
    for i in range(n):
        log = box.tmp / f"daemon-{i}.log"
        with log.open("wb") as f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "snapworker", "daemon"],
                env=env,
                cwd=box.tmp,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        out.append((proc, log))
    return out


def test_three_replicas_share_the_fleet_and_a_frozen_one_never_acts_twice(
    sandbox: Sandbox, pg_url: str, record_property: Callable[[str, object], None]
) -> None:
    box = sandbox
    started = time.monotonic()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    write_config(box)
    sources = seed(box, now)
    moto_ext.clear_faults()
    moto_ext.reset_call_counts()
    moto_ext.set_fault_plan(moto_ext.FaultPlan(latency_seconds=LATENCY))
    daemons: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        with FreezeOnCall("CopyClusterSnapshot", set()) as freeze:
            daemons = start(box, pg_url, 3)
            freeze.pids.update(p.pid for p, _ in daemons)
            wait_for(
                "a replica's first copy", lambda: alive(daemons) and freeze.happened.is_set(), 40
            )
            frozen = freeze.frozen
            assert frozen is not None
            stopped_at = time.monotonic()
            key = (frozen.account, frozen.region)

            # Another replica takes the pair over while the holder is frozen: within one
            # lease period (plus its own poll), it journals work in that pair.
            def taken_over() -> bool:
                return any(
                    (e["account"], e["region"]) == key and e["pid"] != frozen.pid
                    for e in journal(pg_url)
                )

            wait_for(
                "a takeover of the frozen pair while its holder is frozen",
                lambda: alive(daemons) and taken_over(),
                FROZEN_SECONDS,
            )
            took = time.monotonic() - stopped_at
            time.sleep(max(0.0, FROZEN_SECONDS - (time.monotonic() - stopped_at)))
            os.kill(frozen.pid, signal.SIGCONT)
            woke_at = time.monotonic()

            wait_for("every pair converged", lambda: alive(daemons) and converged(sources), 45)
            # Let the woken replica finish its tick: its in-flight call returns, its lease
            # is found lost, it stops working that pair; then nothing more may reach the
            # server.
            time.sleep(LEASE_SECONDS)
            counts = served()
            sent = list(freeze.sent)
            codes = []
        for proc, _ in daemons:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in daemons:
            codes.append(proc.wait(timeout=30))
    finally:
        for proc, _ in daemons:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=10)
        moto_ext.clear_faults()
    logs = _logs(daemons)
    assert codes == [0, 0, 0], logs

    journal_dump = "\n".join(map(str, journal(pg_url)))
    # Once woken, the frozen replica sent nothing more in the pair taken over from it: each
    # request checks the lease right before it goes out. (In another pair it was working,
    # whose lease expired but nobody took, it may carry on: nobody else acted there.)
    late = [r for r in sent if r[1] == frozen.pid and r[0] > woke_at and (r[2], r[3]) == key]
    assert late == [], (late, journal_dump)
    # Each copy and each share reached the server once, in every pair.
    copies: Counter[tuple[str, str, str]] = Counter()
    shares: Counter[tuple[str, str, str]] = Counter()
    for (account, region, op, target), n in counts.items():
        if op == "CopyClusterSnapshot":
            copies[(account, region, target)] += n
        if op == "AuthorizeSnapshotAccess":
            shares[(account, region, target)] += n
    assert set(copies.values()) == {1}, (copies, journal_dump)
    assert set(shares.values()) == {1}, shares
    assert len(copies) == len(shares) == len(PAIRS) * len(sources)
    # Nor any other mutation (the ownership tags of the frozen replica's copy included:
    # the replica that took over tagged it; the frozen one's tagging was refused on waking).
    entries = journal(pg_url)
    twice = {
        (account, region, *k): n
        for _, account, region in PAIRS
        for k, n in estate(box, account, region).sent_twice(counts).items()
    }
    assert twice == {}, (twice, journal_dump)

    # The frozen replica's copy: done by it alone (AWS had it before it froze); its pair's
    # later work by the replica that took over, under a higher fence.
    mine = [e for e in entries if (e["account"], e["region"]) == key]
    by_frozen = [e for e in mine if e["pid"] == frozen.pid]
    others = [e for e in mine if e["pid"] != frozen.pid]
    # Its copy was made (AWS did it before the freeze): the replica that took over found
    # the entry pending and the copy there, and completed the entry ("confirmed after
    # interruption") under the frozen replica's fence; then it tagged and shared the copy.
    # On waking, the frozen replica's tagging was refused unsent ("lease lost") and it wrote
    # nothing more.
    assert [(e["kind"], e["snapshot_id"], e["status"]) for e in by_frozen] == [
        ("copy", frozen.key, "completed")
    ], mine
    # Whatever it journalled on waking under its stale fence (an action whose lease check
    # passed just before the freeze) it closed unsent: failed, "lease lost".
    for e in entries:
        if e["status"] != "completed":
            assert e["pid"] == frozen.pid and e["status"] == "failed", e
            assert "lease lost" in e["error"], e
    assert others and {e["kind"] for e in others} >= {"copy", "share"}, mine
    assert all(e["fence"] is not None for e in entries), entries
    assert min(e["fence"] for e in others) > by_frozen[0]["fence"], mine
    # Nothing in any pair was done under an older fence after a newer one had acted there.
    for _, account, region in PAIRS:
        fences = [
            e["fence"]
            for e in entries
            if (e["account"], e["region"]) == (account, region) and e["status"] == "completed"
        ]
        assert fences == sorted(fences), (account, region, fences)
    assert all(e["status"] == "completed" for e in entries if e["pid"] != frozen.pid), entries

    # The work spread: more than one replica made copies.
    copiers = {e["pid"] for e in entries if e["kind"] == "copy"}
    assert len(copiers) >= 2, copiers
    elapsed = time.monotonic() - started
    record_property(
        "figure",
        f"replicas: 3 daemons, {len(PAIRS)} pairs, lease {LEASE_SECONDS} s: one frozen "
        f"{FROZEN_SECONDS} s mid-copy, its pair taken over {took:.1f} s after the freeze; "
        f"copies by {len(copiers)} replicas; {elapsed:.0f} s in all",
    )
    assert elapsed < 90


def _logs(daemons: list[tuple[subprocess.Popen[bytes], Path]]) -> str:
    return "\n".join(
        f"--- daemon pid {p.pid}:\n{log.read_text(errors='replace')[-3000:]}" for p, log in daemons
    )
