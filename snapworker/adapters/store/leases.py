"""Named leases (``policy:<policy>/<target>/<region>``, ``run:<id>``): one process at a time
acts on a policy in a pair.

Taking a lease is race-free between processes. On SQLite the write transaction holds the
write lock from its start (``BEGIN IMMEDIATE``), so the read and the write run as one step.
On PostgreSQL the lease's row is read ``SELECT ... FOR UPDATE SKIP LOCKED``: a row another
acquirer has locked (it is deciding about it right now) is skipped, and so counts as held,
at once, without waiting; of two inserts of a new lease the primary key lets one through (the
other conflicts, and finds it held).

Fencing: every lease row carries ``fence``, raised by one each time a holder that did not hold
the lease takes it (a fresh acquisition or a takeover; a renewal keeps it). A release marks
the row expired instead of deleting it, so the counter never goes back. A process writes the
fence it holds (:meth:`LeaseRepository.lease_fence`, checked right before each AWS mutation)
into the journal, so an action started by a holder that had lost the lease is told apart.

Who holds a lease, and whether that process still lives: ``adapters.store.holders``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update

from snapworker.adapters.store.engine import Database, aware, changed
from snapworker.adapters.store.tables import LeaseRow

__all__ = ["RELEASED", "LeaseRepository"]

RELEASED = datetime(1970, 1, 1, tzinfo=UTC)
"""The expiry of a released lease (its row stays, with its fence)."""


class LeaseRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        """Take the lease if it is free, expired, or already ours (then it is extended and
        keeps its fence); a new holder raises the fence by one."""
        at = aware(at)
        with self._db.session("acquire lease", write=True) as s:
            row = s.exec(
                select(LeaseRow).where(LeaseRow.name == name).with_for_update(skip_locked=True)
            ).first()
            if row is None:
                exists = s.exec(select(LeaseRow.name).where(LeaseRow.name == name)).first()
                if exists is not None:
                    return False  # locked by another acquirer right now (PostgreSQL)
                # Free: insert. (PostgreSQL: a process inserting it meanwhile wins, we conflict.)
                s.add(
                    LeaseRow(name=name, holder=holder, acquired_at=at, expires_at=at + ttl, fence=1)
                )
                try:
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    return False
                return True
            expires = aware(row.expires_at)
            if row.holder == holder and expires > at:
                values: dict[str, object] = {"expires_at": at + ttl}  # a renewal
            elif expires <= at:
                values = {
                    "holder": holder,
                    "acquired_at": at,
                    "expires_at": at + ttl,
                    "fence": row.fence + 1,
                }
            else:
                return False  # by someone else, and not expired
            changed(s, update(LeaseRow).where(col(LeaseRow.name) == name).values(**values))
            return True

    def renew_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        """Extend a lease we hold; False if it is not (any more) ours (taken over, or
        released)."""
        at = aware(at)
        with self._db.session("renew lease", write=True) as s:
            renewed = changed(
                s,
                update(LeaseRow)
                .where(
                    col(LeaseRow.name) == name,
                    col(LeaseRow.holder) == holder,
                    col(LeaseRow.expires_at) > RELEASED,
                )
                .values(expires_at=at + ttl),
            )
            return renewed == 1

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if we hold it (its row stays, expired, keeping its fence); False
        if it was not ours."""
        with self._db.session("release lease", write=True) as s:
            released = changed(
                s,
                update(LeaseRow)
                .where(
                    col(LeaseRow.name) == name,
                    col(LeaseRow.holder) == holder,
                    col(LeaseRow.expires_at) > RELEASED,
                )
                .values(expires_at=RELEASED),
            )
            return released == 1

    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not); None if nobody does (never taken, or
        released)."""
        with self._db.session("read lease", write=False) as s:
            return s.exec(
                select(LeaseRow.holder).where(
                    LeaseRow.name == name, col(LeaseRow.expires_at) > RELEASED
                )
            ).first()

    def lease_fence(
        self, name: str, holder: str, at: datetime, margin: timedelta = timedelta(0)
    ) -> int | None:
        """The lease's fence if ``holder`` holds it with at least ``margin`` left after
        ``at``; None otherwise (taken over, released, expired, or about to)."""
        at = aware(at)
        with self._db.session("check lease", write=False) as s:
            return s.exec(
                select(LeaseRow.fence).where(
                    LeaseRow.name == name,
                    LeaseRow.holder == holder,
                    col(LeaseRow.expires_at) > at + margin,
                )
            ).first()
