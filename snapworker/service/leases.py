"""One worker at a time per policy and pair: a lease in the state DB, kept alive while a tick
works.

Two processes on the same state DB (the daemon and a `run` from cron, two `run`s, or the
replicas of a fleet) must never act on the same snapshot twice. Before acting on a policy in
a (target, region) pair a tick takes the lease ``policy:<policy>/<target>/<region>``
(``StateStore.acquire_lease``; ``policy:<policy>`` for a keeper made without a pair); a
policy whose lease another holder has is skipped by that tick with a warning. While the tick
works, a heartbeat thread renews every lease it holds at a third of the TTL, so a long tick
(many actions, slow retries) keeps its leases however long one AWS call takes; the tick
releases them when it ends. A holder that
crashed (SIGKILL, power loss) stops renewing, and its leases expire after the TTL, so it
blocks the others for at most ``DEFAULT_TTL``; sooner when it ran on this host (same host
name and PID namespace) and its pid is gone: such a lease is taken over at once.

Lease times are the real wall clock (UTC), never the tick's clock: ``SNAPWORKER_FAKE_NOW``
moves one process's idea of "now" for planning, but lease expiry is compared across
processes and must mean the same instant to all of them.

If a renewal finds the lease gone (this process was suspended for longer than the TTL and
another holder took over), the keeper marks it lost; the tick's ``should_stop`` sees that
and starts no further action. A renewal comes too late for a process frozen (SIGSTOP, a
paused VM) right before an AWS call, so the executor also asks :meth:`PolicyLeases.check`
right before each mutation: the lease must be ours with at least a quarter of the TTL left
(a live holder renews at a third, so it always passes), else :class:`LeaseLost`. ``check``
returns the lease's fencing counter (raised by each new holder, never reset), which the
journal entry of the mutation records.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from snapworker.adapters.store.holders import (
    dead_local_holder,
    new_holder,
    pid_namespace,
    run_lease,
)
from snapworker.errors import SnapworkerError
from snapworker.service.ports import LeaseRepository

__all__ = [
    "DEFAULT_TTL",
    "LeaseLost",
    "PolicyLeases",
    "dead_local_holder",
    "lease_name",
    "new_holder",
    "run_lease",
]

DEFAULT_TTL = timedelta(seconds=120)
"""A crashed holder blocks a policy for at most this long."""


def lease_name(policy: str, pair_key: str | None = None) -> str:
    """``policy:<policy>/<target>/<region>`` for the pair ``pair_key`` (``Pair.key``,
    ``TARGET/REGION``); ``policy:<policy>`` without one."""
    return f"policy:{policy}" if pair_key is None else f"policy:{policy}/{pair_key}"


class LeaseLost(SnapworkerError):
    """The lease of a policy in a pair is no longer ours (or is about to expire): no AWS
    mutation may start under it."""

    def __init__(self, policy: str, pair_key: str | None) -> None:
        where = f" in {pair_key}" if pair_key is not None else ""
        super().__init__(
            f"lease lost: policy {policy}{where} is no longer this process's "
            "(taken over, or about to expire); no further action on it"
        )
        self.policy = policy
        self.pair_key = pair_key


_pid_namespace = pid_namespace  # its former name here


def wall_clock() -> datetime:
    return datetime.now(UTC)


class PolicyLeases:
    """The leases of one tick on one pair (``pair_key``, ``TARGET/REGION``; None: the names
    without a pair): acquire, keep alive in a thread, check before a mutation, release.
    ``ttl``: ``fleet.lease_seconds``."""

    def __init__(
        self,
        store: LeaseRepository,
        holder: str | None = None,
        ttl: timedelta = DEFAULT_TTL,
        clock: Callable[[], datetime] = wall_clock,
        log: Any = None,
        pair_key: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.holder = holder or new_holder()
        self.ttl = ttl
        self.pair_key = pair_key
        self.clock = clock
        self.log = log
        self.monotonic = monotonic
        self._deadlines: dict[str, float] = {}
        """Per policy: until when (``monotonic``) the lease is surely ours with the margin
        left, counted from *before* the acquisition or renewal that the state DB confirmed.
        :meth:`check` needs no query to see it pass: a process frozen (SIGSTOP, a paused VM)
        wakes past it, whatever it was doing when it froze."""
        self.held: list[str] = []
        self.lost: set[str] = set()
        self.kept: list[str] = []
        """Other leases of ours this heartbeat renews (the run's, ``run:<id>``), by name."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, policies: Iterable[str]) -> tuple[list[str], list[str]]:
        """Take the lease of each policy; returns (acquired, skipped because held elsewhere)."""
        acquired: list[str] = []
        skipped: list[str] = []
        try:
            for name in policies:
                started = self.monotonic()
                if self._acquire(self.name(name)):
                    self._confirmed(name, started)
                    acquired.append(name)
                else:
                    skipped.append(name)
        except BaseException:
            self.held = acquired  # give back what we took before the state DB failed us
            self.release()
            raise
        self.held = acquired
        if acquired:
            self._thread = threading.Thread(
                target=self._heartbeat, name="snapworker-lease", daemon=True
            )
            self._thread.start()
        return acquired, skipped

    def _acquire(self, name: str) -> bool:
        if self.store.acquire_lease(name, self.holder, self.ttl, self.clock()):
            return True
        other = self.store.lease_holder(name)
        if other is None or not dead_local_holder(other):
            return False
        # Its holder was killed on this host: take over now rather than after the TTL.
        # (Two takers race on the insert; the state DB lets one win.)
        if self.log is not None:
            self.log.warning("taking over the lease of a dead process", lease=name, holder=other)
        self.store.release_lease(name, other)
        return self.store.acquire_lease(name, self.holder, self.ttl, self.clock())

    def name(self, policy: str) -> str:
        """The lease name of ``policy`` in this keeper's pair."""
        return lease_name(policy, self.pair_key)

    @property
    def margin(self) -> timedelta:
        """How much of the lease must be left for :meth:`check` to pass: a quarter of the
        TTL (the heartbeat renews at a third)."""
        return self.ttl / 4

    def _confirmed(self, policy: str, started: float) -> None:
        """The state DB confirmed the lease of ``policy``, asked at ``started``."""
        until = started + (self.ttl - self.margin).total_seconds()
        self._deadlines[policy] = max(self._deadlines.get(policy, until), until)

    def check(self, policy: str) -> int:
        """Right before an AWS mutation on ``policy``: the lease's fencing counter, if this
        process holds it with at least :attr:`margin` left; else the policy is marked lost
        and :class:`LeaseLost` raised (naming the policy and the pair).

        Two checks: the state DB's (``lease_fence``: the lease is still this holder's and
        its expiry is at least the margin away), then, last, the local deadline (no query:
        a process frozen during the first check, or after it, fails this one when it
        wakes). What is left is the instant between this check and the request leaving."""
        if policy in self.held and policy not in self.lost:
            fence = self.store.lease_fence(
                self.name(policy), self.holder, self.clock(), self.margin
            )
            if fence is not None and self.monotonic() < self._deadlines.get(policy, 0.0):
                return fence
        self.lost.add(policy)
        raise LeaseLost(policy, self.pair_key)

    def keep(self, name: str) -> None:
        """Renew the lease ``name`` (taken by the caller, e.g. with its run) with the others,
        and release it with them."""
        self.kept.append(name)

    def expiry(self) -> datetime:
        """When a lease taken or renewed now expires."""
        return self.clock() + self.ttl

    def renew(self) -> None:
        """Extend every lease held; one that is no longer ours is marked lost."""
        for name in self.kept:
            try:
                self.store.renew_lease(name, self.holder, self.ttl, self.clock())
            except Exception as e:  # a busy DB: try again at the next beat
                if self.log is not None:
                    self.log.warning("lease renewal failed", lease=name, error=str(e))
        for name in self.held:
            if name in self.lost:
                continue
            started = self.monotonic()
            try:
                ok = self.store.renew_lease(self.name(name), self.holder, self.ttl, self.clock())
            except Exception as e:  # a busy DB: try again at the next beat
                if self.log is not None:
                    self.log.warning("lease renewal failed", policy=name, error=str(e))
                continue
            if ok:
                self._confirmed(name, started)
            else:
                self.lost.add(name)
                if self.log is not None:
                    self.log.error("lease lost: stopping work on the policy", policy=name)

    def _heartbeat(self) -> None:
        interval = max(self.ttl.total_seconds() / 3, 0.05)
        while not self._stop.wait(interval):
            self.renew()

    @property
    def any_lost(self) -> bool:
        return bool(self.lost)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for name in self.held:
            try:
                self.store.release_lease(self.name(name), self.holder)
            except Exception as e:  # it expires on its own
                if self.log is not None:
                    self.log.warning("lease release failed", policy=name, error=str(e))
        for name in self.kept:
            with contextlib.suppress(Exception):  # it expires on its own
                self.store.release_lease(name, self.holder)
        self.held = []
        self.kept = []
