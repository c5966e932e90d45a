"""Named leases (e.g. ``policy:prod-nightly``): one process at a time acts on a policy.

Taking a lease is race-free between processes: on SQLite the write transaction holds the
write lock from its start (``BEGIN IMMEDIATE``), so the conditional update and the insert
run as one step; on PostgreSQL the conditional update waits for a concurrent one and
re-checks its condition, and of two inserts of a free lease the primary key lets one through
(the other conflicts, and finds it held).

Who holds a lease, and whether that process still lives: ``adapters.store.holders``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import UTCDateTime, case, col, delete, literal, or_, select, update

from snapworker.adapters.store.engine import Database, aware, changed
from snapworker.adapters.store.tables import LeaseRow

__all__ = ["LeaseRepository"]


class LeaseRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        """Take the lease if it is free, expired, or already ours (then it is extended)."""
        at = aware(at)
        with self._db.session("acquire lease", write=True) as s:
            taken = changed(
                s,
                update(LeaseRow)
                .where(
                    col(LeaseRow.name) == name,
                    or_(col(LeaseRow.expires_at) <= at, col(LeaseRow.holder) == holder),
                )
                .values(
                    holder=holder,
                    # A renewal keeps when it was acquired; a takeover starts now.
                    acquired_at=case(
                        (col(LeaseRow.holder) == holder, col(LeaseRow.acquired_at)),
                        else_=literal(at, UTCDateTime()),
                    ),
                    expires_at=at + ttl,
                ),
            )
            if taken == 1:
                return True
            held = s.exec(select(LeaseRow.name).where(LeaseRow.name == name)).first()
            if held is not None:
                return False  # by someone else, and not expired
            # Free: insert. (PostgreSQL: a process inserting it meanwhile wins, we conflict.)
            s.add(LeaseRow(name=name, holder=holder, acquired_at=at, expires_at=at + ttl))
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                return False
            return True

    def renew_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        """Extend a lease we hold; False if it is not (any more) ours."""
        at = aware(at)
        with self._db.session("renew lease", write=True) as s:
            renewed = changed(
                s,
                update(LeaseRow)
                .where(col(LeaseRow.name) == name, col(LeaseRow.holder) == holder)
                .values(expires_at=at + ttl),
            )
            return renewed == 1

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if we hold it; False if it was not ours."""
        with self._db.session("release lease", write=True) as s:
            released = changed(
                s,
                delete(LeaseRow).where(col(LeaseRow.name) == name, col(LeaseRow.holder) == holder),
            )
            return released == 1

    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not); None if nobody does."""
        with self._db.session("read lease", write=False) as s:
            return s.exec(select(LeaseRow.holder).where(LeaseRow.name == name)).first()
