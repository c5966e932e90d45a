"""The state DB: what the worker made, the grants it gave, the journal of its actions, its runs.

The store records; the planner decides. Every write is its own short transaction, committed
before the method returns, so that a journal entry survives a SIGKILL right after it (the
apply step writes it before the AWS call). On SQLite a write transaction starts with ``BEGIN
IMMEDIATE`` (the write lock up front, waiting up to the busy timeout) so that a
read-then-write never fails half way with a stale snapshot; reads use a deferred ``BEGIN``.

The queries are written once, as SQL text with ``:name`` parameters, and run by a small
driver (:mod:`snapworker.adapters.store.driver`): a plain ``sqlite:`` URL on the stdlib ``sqlite3``
module, so that a cron tick on a current schema never imports SQLAlchemy; any other URL
(PostgreSQL) through SQLAlchemy. The tables are those of the SQLModel models in
:mod:`snapworker.adapters.store.tables`, created by the Alembic migrations; the driver stores values
as SQLModel does, and ``tests/test_store_driver.py`` checks both read what the other wrote.

Grants: ``State.grants`` lists the grants the worker made (``granted_at`` known), open or
revoked. A revoke of a grant it has no record of making (someone else's, or one made before
the state DB was lost) is recorded too, as a grant row with ``granted_at`` NULL and
``revoked_at`` set; such rows show in :meth:`StateStore.owned_summary` but not in
``State.grants``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from snapworker.adapters.store.driver import (
    Columns,
    Driver,
    DriverError,
    Row,
    StateStoreError,
    Tx,
    masked_url,
    open_driver,
    parse_sqlite_url,
)
from snapworker.adapters.store.schema import ensure_schema
from snapworker.core.model import (
    Action,
    ActionKind,
    GrantRecord,
    MadeFor,
    OwnedRecord,
    PendingEntry,
    Plan,
    State,
    VerificationRecord,
    VerificationStatus,
)

__all__ = [
    "DriftItem",
    "DriftReport",
    "GrantView",
    "JournalStatus",
    "JournalView",
    "OwnedSummary",
    "OwnedView",
    "RunStatus",
    "RunView",
    "StateStore",
    "StateStoreError",
    "VerificationView",
    "drift_items",
    "open_store",
]

JournalStatus = Literal["pending", "completed", "failed", "superseded"]
RunStatus = Literal["running", "ok", "failed"]
_FINISHED_STATUSES = frozenset({"completed", "failed", "superseded"})
_RUN_END_STATUSES = frozenset({"ok", "failed"})

DEFAULT_BUSY_TIMEOUT_MS = 5000


# --------------------------------------------------------------------------- views for status


@dataclass(frozen=True)
class OwnedView:
    snapshot_id: str
    policy: str
    cluster: str
    made_for: str
    source_id: str | None
    data_time: datetime | None
    fire_time: datetime | None
    recorded_at: datetime
    adopted: bool
    deleted_at: datetime | None


@dataclass(frozen=True)
class GrantView:
    snapshot_id: str
    account: str
    granted_at: datetime | None  # None: a revoke of a grant the worker did not make
    revoked_at: datetime | None


@dataclass(frozen=True)
class OwnedSummary:
    """Owned snapshots (live and deleted) by policy, then cluster, oldest data first; and the
    grants still open."""

    owned: Mapping[str, Mapping[str, tuple[OwnedView, ...]]]
    open_grants: tuple[GrantView, ...]


@dataclass(frozen=True)
class JournalView:
    id: int
    run_id: int
    key: str
    policy: str
    cluster: str
    kind: str
    snapshot_id: str
    account: str | None
    source_id: str | None
    reason: str
    status: str
    outcome: str | None
    error: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RunView:
    id: int
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    actions_ok: int
    actions_failed: int
    api_calls: Mapping[str, int]
    error: str | None
    pid: int
    failures: tuple[JournalView, ...]  # this run's journal entries that failed


@dataclass(frozen=True)
class DriftItem:
    """A grant to an account the policy does not list; ``revoked``: the run revoked it
    (``revoke_unlisted: true`` and the revoke succeeded), else it was only reported."""

    policy: str
    cluster: str
    snapshot_id: str
    account: str
    revoked: bool = False


@dataclass(frozen=True)
class DriftReport:
    """The drift one run saw (``items`` empty: it saw none), and when."""

    run_id: int
    seen_at: datetime | None
    items: tuple[DriftItem, ...]


def drift_items(plan: Plan, revoked: Iterable[str] | None = None) -> list[DriftItem]:
    """The plan's drift as rows to record. ``revoked``: the keys of the revokes that were
    done (after apply); None: the revokes the plan asks for (before apply)."""
    revoking = (
        {a.key for a in plan.actions if a.kind == "revoke"} if revoked is None else set(revoked)
    )
    return [
        DriftItem(
            policy=d.policy,
            cluster=d.cluster,
            snapshot_id=d.snapshot,
            account=d.account or "",
            revoked=d.key in revoking,
        )
        for d in plan.drift
    ]


# --------------------------------------------------------------------------------- opening

COLUMNS = Columns(
    datetimes=frozenset(
        {
            "acquired_at",
            "copied_at",
            "data_time",
            "deleted_at",
            "expires_at",
            "finished_at",
            "fire_time",
            "granted_at",
            "recorded_at",
            "revoked_at",
            "scratch_deleted_at",
            "seen_at",
            "started_at",
        }
    ),
    booleans=frozenset({"adopted", "revoked"}),
)
"""The result columns the driver converts, by name (the same name has the same type in every
table); a test checks this against the SQLModel models."""


def open_store(url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> StateStore:
    """Open the state DB at a SQLAlchemy URL, creating or upgrading its schema.

    SQLite: the parent directory is created, a new file is created empty with mode 0600
    before anything is written to it, and every connection runs in WAL mode with a busy
    timeout and foreign keys on. Raises :class:`StateStoreError` (URL shown, password masked).
    """
    shown = masked_url(url)
    path = _sqlite_file(url)
    if path is not None:
        _prepare_sqlite_file(path, shown)
    driver = open_driver(url, busy_timeout_ms, COLUMNS)
    try:
        ensure_schema(driver)
    except BaseException:
        driver.close()
        raise
    return StateStore(driver)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: not SQLite, in memory, or a ``file:`` URI)."""
    scheme = url.partition("://")[0]
    if scheme != "sqlite" and not scheme.startswith("sqlite+"):
        return None
    parsed = parse_sqlite_url(url.replace(scheme, "sqlite", 1))
    if parsed is None:
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def _prepare_sqlite_file(path: Path, shown: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.is_dir():
            raise StateStoreError(f"state DB {shown}: {path} is a directory") from None
        return  # an existing database keeps its mode
    except OSError as exc:
        raise StateStoreError(
            f"state DB {shown}: cannot create {path}: {exc.strerror or exc}"
        ) from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)


def _aware(value: datetime, name: str = "at") -> datetime:
    """The same instant in UTC; a naive datetime is a programming error."""
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _aware_opt(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else _aware(value, name)


# ----------------------------------------------------------------------------------- store


class StateStore:
    """Typed access to the state DB; see the module docstring for the transaction rules."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.url = driver.url

    @property
    def driver(self) -> Driver:
        return self._driver

    # -- plumbing

    @contextmanager
    def _tx(self, what: str, *, write: bool) -> Iterator[Tx]:
        try:
            with self._driver.transaction(write=write) as tx:
                yield tx
        except DriverError as exc:
            raise StateStoreError(f"state DB {self.url}: {what} failed: {exc}") from exc

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- what the planner needs

    def load_state(self) -> State:
        """Owned records (deleted ones too), the grants the worker made, pending entries."""
        with self._tx("load state", write=False) as tx:
            owned = {
                row["snapshot_id"]: _owned_record(row)
                for row in tx.all("SELECT * FROM owned_snapshot")
            }
            grants = tuple(
                GrantRecord(
                    snapshot_id=row["snapshot_id"],
                    account=row["account"],
                    granted_at=row["granted_at"],
                    revoked_at=row["revoked_at"],
                )
                for row in tx.all('SELECT * FROM "grant" WHERE granted_at IS NOT NULL ORDER BY id')
            )
            pending = tuple(_pending(row) for row in tx.all(_PENDING))
            verifications = tuple(
                _verification_record(row)
                for row in tx.all("SELECT * FROM verification ORDER BY id")
            )
        return State(owned=owned, grants=grants, pending=pending, verifications=verifications)

    def copied_sources(self, policy: str) -> set[str]:
        with self._tx("read copied sources", write=False) as tx:
            rows = tx.all(
                "SELECT source_id FROM copied_source WHERE policy = :policy", {"policy": policy}
            )
            return {row["source_id"] for row in rows}

    def record_copied_source(
        self, policy: str, source_id: str, target_id: str, at: datetime
    ) -> bool:
        """Remember that ``policy`` copied ``source_id``; False if it was already recorded
        (the first record stays)."""
        at = _aware(at)
        key = {"policy": policy, "source_id": source_id}
        with self._tx("record copied source", write=True) as tx:
            if tx.first(
                "SELECT 1 AS found FROM copied_source"
                " WHERE policy = :policy AND source_id = :source_id",
                key,
            ):
                return False
            tx.run(
                "INSERT INTO copied_source (policy, source_id, target_id, copied_at)"
                " VALUES (:policy, :source_id, :target_id, :copied_at)",
                {**key, "target_id": target_id, "copied_at": at},
            )
            return True

    def record_owned(self, rec: OwnedRecord, adopted: bool = False, *, at: datetime) -> None:
        """Upsert the record of an owned snapshot.

        On an existing row, fields ``rec`` leaves None keep their stored value (nothing known
        is forgotten), ``recorded_at`` stays the first one, and ``adopted`` stays False once
        the worker recorded the snapshot as its own.
        """
        at = _aware(at)
        values: dict[str, Any] = {
            "snapshot_id": rec.snapshot_id,
            "policy": rec.policy,
            "cluster": rec.cluster,
            "made_for": rec.made_for,
            "source_id": rec.source_id,
            "data_time": _aware_opt(rec.data_time, "data_time"),
            "fire_time": _aware_opt(rec.fire_time, "fire_time"),
            "deleted_at": _aware_opt(rec.deleted_at, "deleted_at"),
        }
        with self._tx("record owned snapshot", write=True) as tx:
            row = tx.first(
                "SELECT * FROM owned_snapshot WHERE snapshot_id = :snapshot_id",
                {"snapshot_id": rec.snapshot_id},
            )
            if row is None:
                tx.run(
                    "INSERT INTO owned_snapshot (snapshot_id, policy, cluster, made_for,"
                    " source_id, data_time, fire_time, recorded_at, adopted, deleted_at)"
                    " VALUES (:snapshot_id, :policy, :cluster, :made_for, :source_id,"
                    " :data_time, :fire_time, :recorded_at, :adopted, :deleted_at)",
                    {**values, "recorded_at": at, "adopted": adopted},
                )
                return
            for name in ("source_id", "data_time", "fire_time", "deleted_at"):
                if values[name] is None:
                    values[name] = row[name]
            values["adopted"] = bool(row["adopted"]) and adopted
            tx.run(
                "UPDATE owned_snapshot SET policy = :policy, cluster = :cluster,"
                " made_for = :made_for, source_id = :source_id, data_time = :data_time,"
                " fire_time = :fire_time, deleted_at = :deleted_at, adopted = :adopted"
                " WHERE snapshot_id = :snapshot_id",
                values,
            )

    def mark_deleted(self, snapshot_id: str, at: datetime) -> bool:
        """Set ``deleted_at`` (the first one stays); False if there is no such record."""
        at = _aware(at)
        with self._tx("mark snapshot deleted", write=True) as tx:
            row = tx.first(
                "SELECT deleted_at FROM owned_snapshot WHERE snapshot_id = :snapshot_id",
                {"snapshot_id": snapshot_id},
            )
            if row is None:
                return False
            if row["deleted_at"] is None:
                tx.run(
                    "UPDATE owned_snapshot SET deleted_at = :at WHERE snapshot_id = :snapshot_id",
                    {"at": at, "snapshot_id": snapshot_id},
                )
            return True

    # -- grants

    def record_grant(self, snapshot_id: str, account: str, at: datetime) -> bool:
        """Record a grant the worker made; False (nothing written) if one is already open."""
        at = _aware(at)
        pair = {"snapshot_id": snapshot_id, "account": account}
        with self._tx("record grant", write=True) as tx:
            if tx.first(_OPEN_GRANTS, pair) is not None:
                return False
            tx.run(
                'INSERT INTO "grant" (snapshot_id, account, granted_at, revoked_at)'
                " VALUES (:snapshot_id, :account, :at, NULL)",
                {**pair, "at": at},
            )
            return True

    def record_revoke(self, snapshot_id: str, account: str, at: datetime) -> bool:
        """Close the open grant of ``account`` on the snapshot. With none open, record a revoke
        of a grant the worker did not make (``granted_at`` NULL), unless the newest row for
        the pair is already closed (a repeated revoke). True if something was written."""
        at = _aware(at)
        pair = {"snapshot_id": snapshot_id, "account": account}
        with self._tx("record revoke", write=True) as tx:
            closed = tx.run(
                'UPDATE "grant" SET revoked_at = :at WHERE snapshot_id = :snapshot_id'
                " AND account = :account AND revoked_at IS NULL",
                {**pair, "at": at},
            )
            if closed:
                return True
            newest = tx.first(
                'SELECT id FROM "grant" WHERE snapshot_id = :snapshot_id AND account = :account'
                " ORDER BY id DESC",
                pair,
            )
            if newest is not None:
                return False  # its revoked_at is set: no open grant exists
            tx.run(
                'INSERT INTO "grant" (snapshot_id, account, granted_at, revoked_at)'
                " VALUES (:snapshot_id, :account, NULL, :at)",
                {**pair, "at": at},
            )
            return True

    # -- drift

    def record_drift(self, run_id: int, items: Iterable[DriftItem], at: datetime) -> int:
        """Record the drift run ``run_id`` saw (once per run, after applying; with no items
        nothing is written, and the finished run row says the check happened). Returns the
        rows written."""
        at = _aware(at)
        rows = [
            {
                "run_id": run_id,
                "policy": i.policy,
                "cluster": i.cluster,
                "snapshot_id": i.snapshot_id,
                "account": i.account,
                "seen_at": at,
                "revoked": i.revoked,
            }
            for i in items
        ]
        if not rows:
            return 0
        with self._tx("record drift", write=True) as tx:
            for row in rows:
                tx.run(
                    "INSERT INTO drift (run_id, policy, cluster, snapshot_id, account, seen_at,"
                    " revoked) VALUES (:run_id, :policy, :cluster, :snapshot_id, :account,"
                    " :seen_at, :revoked)",
                    row,
                )
        return len(rows)

    def latest_drift(self) -> DriftReport | None:
        """The drift seen by the newest ``run``/``daemon`` tick that finished without an
        exception (one that raised may not have recorded it, so an older one's view is shown
        instead; one still running is not looked at). None when no such tick exists yet."""
        with self._tx("read drift", write=False) as tx:
            run = tx.first(
                "SELECT id, finished_at FROM run WHERE mode != 'plan'"
                " AND finished_at IS NOT NULL AND error IS NULL ORDER BY id DESC LIMIT 1"
            )
            if run is None:
                return None
            rows = tx.all(
                "SELECT * FROM drift WHERE run_id = :run_id"
                " ORDER BY policy, cluster, snapshot_id, account",
                {"run_id": run["id"]},
            )
            return DriftReport(
                run_id=run["id"],
                seen_at=rows[0]["seen_at"] if rows else run["finished_at"],
                items=tuple(
                    DriftItem(
                        policy=r["policy"],
                        cluster=r["cluster"],
                        snapshot_id=r["snapshot_id"],
                        account=r["account"],
                        revoked=r["revoked"],
                    )
                    for r in rows
                ),
            )

    # -- runs

    def begin_run(self, mode: str, pid: int, at: datetime) -> int:
        at = _aware(at)
        with self._tx("begin run", write=True) as tx:
            row = tx.first(
                "INSERT INTO run (mode, started_at, finished_at, status, actions_ok,"
                " actions_failed, api_calls, error, pid) VALUES (:mode, :at, NULL, 'running',"
                " 0, 0, '{}', NULL, :pid) RETURNING id",
                {"mode": mode, "at": at, "pid": pid},
            )
            assert row is not None
            return int(row["id"])

    def finish_run(
        self,
        run_id: int,
        status: str,
        actions_ok: int,
        actions_failed: int,
        api_calls: Mapping[str, int],
        error: str | None,
        at: datetime,
    ) -> None:
        at = _aware(at)
        if status not in _RUN_END_STATUSES:
            raise ValueError(f"run status must be one of {sorted(_RUN_END_STATUSES)}: {status!r}")
        with self._tx("finish run", write=True) as tx:
            changed = tx.run(
                "UPDATE run SET status = :status, actions_ok = :actions_ok,"
                " actions_failed = :actions_failed, api_calls = :api_calls, error = :error,"
                " finished_at = :at WHERE id = :id",
                {
                    "id": run_id,
                    "status": status,
                    "actions_ok": actions_ok,
                    "actions_failed": actions_failed,
                    "api_calls": json.dumps(dict(api_calls), sort_keys=True),
                    "error": error,
                    "at": at,
                },
            )
            if changed == 0:
                raise StateStoreError(f"state DB {self.url}: run {run_id} does not exist")

    # -- journal

    def journal_start(self, run_id: int, action: Action, at: datetime) -> int:
        """Write the action as ``pending`` before its AWS call; committed on return.

        A pending entry with the same key (a crash cut it short) is reused: its attempts go
        up, it moves to this run, and it keeps its first ``started_at``.
        """
        at = _aware(at)
        with self._tx("start journal entry", write=True) as tx:
            row = tx.first(
                "SELECT id, source_id FROM journal WHERE key = :key AND status = 'pending'"
                " ORDER BY id LIMIT 1",
                {"key": action.key},
            )
            if row is not None:
                tx.run(
                    "UPDATE journal SET attempts = attempts + 1, run_id = :run_id,"
                    " reason = :reason, source_id = :source_id WHERE id = :id",
                    {
                        "id": row["id"],
                        "run_id": run_id,
                        "reason": action.reason,
                        "source_id": action.source
                        if action.source is not None
                        else row["source_id"],
                    },
                )
                return int(row["id"])
            new = tx.first(
                "INSERT INTO journal (run_id, key, policy, cluster, kind, snapshot_id, account,"
                " source_id, reason, status, started_at, finished_at, error, attempts, outcome)"
                " VALUES (:run_id, :key, :policy, :cluster, :kind, :snapshot_id, :account,"
                " :source_id, :reason, 'pending', :at, NULL, NULL, 1, NULL) RETURNING id",
                {
                    "run_id": run_id,
                    "key": action.key,
                    "policy": action.policy,
                    "cluster": action.cluster,
                    "kind": action.kind,
                    "snapshot_id": action.snapshot,
                    "account": action.account,
                    "source_id": action.source,
                    "reason": action.reason,
                    "at": at,
                },
            )
            assert new is not None
            return int(new["id"])

    def journal_finish(
        self,
        entry_id: int,
        status: str,
        outcome: str | None,
        error: str | None,
        at: datetime,
    ) -> None:
        """Record the outcome: ``completed``, ``failed`` or ``superseded``."""
        at = _aware(at)
        if status not in _FINISHED_STATUSES:
            raise ValueError(
                f"journal status must be one of {sorted(_FINISHED_STATUSES)}: {status!r}"
            )
        with self._tx("finish journal entry", write=True) as tx:
            changed = tx.run(
                "UPDATE journal SET status = :status, outcome = :outcome, error = :error,"
                " finished_at = :at WHERE id = :id",
                {"id": entry_id, "status": status, "outcome": outcome, "error": error, "at": at},
            )
            if changed == 0:
                raise StateStoreError(
                    f"state DB {self.url}: journal entry {entry_id} does not exist"
                )

    def supersede(self, entry_id: int, at: datetime) -> None:
        """A pending entry the plan no longer wants (e.g. its snapshot is gone)."""
        self.journal_finish(entry_id, "superseded", None, None, at)

    def pending_entries(self) -> list[PendingEntry]:
        with self._tx("read pending entries", write=False) as tx:
            return [_pending(row) for row in tx.all(_PENDING)]

    # -- leases

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        """Take the lease if it is free, expired, or already ours (then it is extended)."""
        at = _aware(at)
        values = {"name": name, "holder": holder, "at": at, "expires": at + ttl}
        with self._tx("acquire lease", write=True) as tx:
            taken = tx.run(
                "UPDATE lease SET holder = :holder,"
                " acquired_at = CASE WHEN holder = :holder THEN acquired_at ELSE :at END,"
                " expires_at = :expires"
                " WHERE name = :name AND (expires_at <= :at OR holder = :holder)",
                values,
            )
            if taken == 1:
                return True
            # Free: insert. Held by someone else, not expired: the insert does nothing.
            inserted = tx.run(
                "INSERT INTO lease (name, holder, acquired_at, expires_at)"
                " VALUES (:name, :holder, :at, :expires) ON CONFLICT (name) DO NOTHING",
                values,
            )
            return inserted == 1

    def renew_lease(self, name: str, holder: str, ttl: timedelta, at: datetime) -> bool:
        """Extend a lease we hold; False if it is not (any more) ours."""
        at = _aware(at)
        with self._tx("renew lease", write=True) as tx:
            changed = tx.run(
                "UPDATE lease SET expires_at = :expires WHERE name = :name AND holder = :holder",
                {"name": name, "holder": holder, "expires": at + ttl},
            )
            return changed == 1

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if we hold it; False if it was not ours."""
        with self._tx("release lease", write=True) as tx:
            changed = tx.run(
                "DELETE FROM lease WHERE name = :name AND holder = :holder",
                {"name": name, "holder": holder},
            )
            return changed == 1

    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not); None if nobody does."""
        with self._tx("read lease", write=False) as tx:
            row = tx.first("SELECT holder FROM lease WHERE name = :name", {"name": name})
            return None if row is None else str(row["holder"])

    # -- housekeeping

    def prune(self, before: datetime) -> int:
        """Delete finished journal entries and finished runs older than ``before``; pending
        entries always stay. Returns how many rows went."""
        before = _aware(before, "before")
        with self._tx("prune", write=True) as tx:
            journal = tx.run(
                "DELETE FROM journal WHERE status != 'pending' AND finished_at IS NOT NULL"
                " AND finished_at < :before",
                {"before": before},
            )
            runs = tx.run(
                "DELETE FROM run WHERE finished_at IS NOT NULL AND finished_at < :before",
                {"before": before},
            )
            return journal + runs

    # -- for `status`

    def journal(self, limit: int = 50, run_id: int | None = None) -> list[JournalView]:
        """The newest entries first, of one run or of all."""
        where = "" if run_id is None else " WHERE run_id = :run_id"
        with self._tx("read journal", write=False) as tx:
            rows = tx.all(
                f"SELECT * FROM journal{where} ORDER BY id DESC LIMIT :limit",
                {"run_id": run_id, "limit": limit} if run_id is not None else {"limit": limit},
            )
            return [_journal_view(row) for row in rows]

    def recent_runs(self, limit: int = 10) -> list[RunView]:
        """The newest runs first, each with its failed journal entries and API call counts."""
        with self._tx("read runs", write=False) as tx:
            runs = tx.all("SELECT * FROM run ORDER BY id DESC LIMIT :limit", {"limit": limit})
            ids = {run["id"] for run in runs}
            failures: dict[int, list[JournalView]] = {}
            if ids:
                # The runs read above, by id range (one statement may see newer rows).
                failed = tx.all(
                    "SELECT * FROM journal WHERE status = 'failed'"
                    " AND run_id BETWEEN :oldest AND :newest ORDER BY id",
                    {"oldest": min(ids), "newest": max(ids)},
                )
                for row in failed:
                    if row["run_id"] in ids:
                        failures.setdefault(row["run_id"], []).append(_journal_view(row))
            return [
                RunView(
                    id=run["id"],
                    mode=run["mode"],
                    status=run["status"],
                    started_at=run["started_at"],
                    finished_at=run["finished_at"],
                    actions_ok=run["actions_ok"],
                    actions_failed=run["actions_failed"],
                    api_calls=_api_calls(run["api_calls"]),
                    error=run["error"],
                    pid=run["pid"],
                    failures=tuple(failures.get(run["id"], ())),
                )
                for run in runs
            ]

    def owned_summary(self) -> OwnedSummary:
        with self._tx("read owned snapshots", write=False) as tx:
            owned: dict[str, dict[str, list[OwnedView]]] = {}
            rows = tx.all(
                "SELECT * FROM owned_snapshot ORDER BY policy, cluster,"
                " data_time IS NOT NULL, data_time, snapshot_id"  # no data time first, anywhere
            )
            for row in rows:
                owned.setdefault(row["policy"], {}).setdefault(row["cluster"], []).append(
                    OwnedView(
                        snapshot_id=row["snapshot_id"],
                        policy=row["policy"],
                        cluster=row["cluster"],
                        made_for=row["made_for"],
                        source_id=row["source_id"],
                        data_time=row["data_time"],
                        fire_time=row["fire_time"],
                        recorded_at=row["recorded_at"],
                        adopted=row["adopted"],
                        deleted_at=row["deleted_at"],
                    )
                )
            open_grants = tuple(
                GrantView(
                    snapshot_id=row["snapshot_id"],
                    account=row["account"],
                    granted_at=row["granted_at"],
                    revoked_at=row["revoked_at"],
                )
                for row in tx.all(
                    'SELECT * FROM "grant" WHERE revoked_at IS NULL ORDER BY snapshot_id, account'
                )
            )
        return OwnedSummary(
            owned={
                policy: {cluster: tuple(views) for cluster, views in clusters.items()}
                for policy, clusters in owned.items()
            },
            open_grants=open_grants,
        )

    # -- restore drills (snapworker.service.drills)

    def start_verification(
        self,
        policy: str,
        cluster: str,
        snapshot_id: str,
        fire_time: datetime,
        scratch_cluster: str,
        at: datetime,
    ) -> int:
        """Record a drill as ``pending`` before its restore call; committed on return.

        A drill of the same scratch cluster (same policy, cluster and fire time) that a crash
        cut short is reused; other unfinished drills of the cluster become ``interrupted``.
        """
        at = _aware(at)
        fire_time = _aware(fire_time, "fire_time")
        with self._tx("start verification", write=True) as tx:
            unfinished = tx.all(
                "SELECT id, scratch_cluster, status FROM verification WHERE policy = :policy"
                " AND cluster = :cluster AND status IN ('pending', 'interrupted') ORDER BY id",
                {"policy": policy, "cluster": cluster},
            )
            reused: int | None = None
            for old in unfinished:
                if old["scratch_cluster"] == scratch_cluster and reused is None:
                    reused = int(old["id"])
                elif old["status"] == "pending":
                    tx.run(
                        "UPDATE verification SET status = 'interrupted', finished_at = :at"
                        " WHERE id = :id",
                        {"id": old["id"], "at": at},
                    )
            if reused is not None:
                tx.run(
                    "UPDATE verification SET snapshot_id = :snapshot_id, status = 'pending',"
                    " started_at = :at, finished_at = NULL, detail = '{}' WHERE id = :id",
                    {"id": reused, "snapshot_id": snapshot_id, "at": at},
                )
                return reused
            new = tx.first(
                "INSERT INTO verification (policy, cluster, snapshot_id, fire_time,"
                " scratch_cluster, status, started_at, finished_at, detail, scratch_deleted_at)"
                " VALUES (:policy, :cluster, :snapshot_id, :fire_time, :scratch_cluster,"
                " 'pending', :at, NULL, '{}', NULL) RETURNING id",
                {
                    "policy": policy,
                    "cluster": cluster,
                    "snapshot_id": snapshot_id,
                    "fire_time": fire_time,
                    "scratch_cluster": scratch_cluster,
                    "at": at,
                },
            )
            assert new is not None
            return int(new["id"])

    def finish_verification(
        self, verification_id: int, status: str, detail: Mapping[str, Any], at: datetime
    ) -> None:
        """The drill's outcome: ``passed``, ``failed`` or ``error``, with each check's result.
        ``detail`` must hold no credential (the caller builds it from check results)."""
        at = _aware(at)
        if status not in ("passed", "failed", "error"):
            raise ValueError(f"verification status must be passed, failed or error: {status!r}")
        with self._tx("finish verification", write=True) as tx:
            changed = tx.run(
                "UPDATE verification SET status = :status, finished_at = :at,"
                " detail = :detail WHERE id = :id",
                {
                    "id": verification_id,
                    "status": status,
                    "at": at,
                    "detail": json.dumps(dict(detail), sort_keys=True, default=str),
                },
            )
            if changed == 0:
                raise StateStoreError(
                    f"state DB {self.url}: verification {verification_id} does not exist"
                )

    def mark_scratch_deleted(self, scratch_cluster: str, at: datetime) -> int:
        """The scratch cluster is gone (deleted by us, or never made); returns rows updated."""
        at = _aware(at)
        with self._tx("mark scratch cluster deleted", write=True) as tx:
            return tx.run(
                "UPDATE verification SET scratch_deleted_at = :at"
                " WHERE scratch_cluster = :scratch_cluster AND scratch_deleted_at IS NULL",
                {"scratch_cluster": scratch_cluster, "at": at},
            )

    def verifications(self, limit: int | None = None) -> list[VerificationView]:
        """Drills, newest first."""
        sql = "SELECT * FROM verification ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT :limit"
        with self._tx("read verifications", write=False) as tx:
            rows = tx.all(sql, {"limit": limit} if limit is not None else None)
            return [_verification_view(row) for row in rows]

    def record_figures(
        self,
        snapshot_id: str,
        policy: str,
        cluster: str,
        figures: Mapping[str, Any],
        at: datetime,
    ) -> None:
        """Store the figures read right before the snapshot's CreateClusterSnapshot call. A
        retried create reads them again just before its own call, so the newest read wins."""
        at = _aware(at)
        values = {
            "snapshot_id": snapshot_id,
            "policy": policy,
            "cluster": cluster,
            "figures": json.dumps(dict(figures), sort_keys=True, default=str),
            "at": at,
        }
        with self._tx("record snapshot figures", write=True) as tx:
            changed = tx.run(
                "UPDATE snapshot_figures SET figures = :figures, recorded_at = :at"
                " WHERE snapshot_id = :snapshot_id",
                values,
            )
            if changed == 0:
                tx.run(
                    "INSERT INTO snapshot_figures (snapshot_id, policy, cluster, figures,"
                    " recorded_at) VALUES (:snapshot_id, :policy, :cluster, :figures, :at)",
                    values,
                )

    def figures_for(self, snapshot_id: str) -> dict[str, Any] | None:
        """The figures recorded with a snapshot, or None."""
        with self._tx("read snapshot figures", write=False) as tx:
            row = tx.first(
                "SELECT figures FROM snapshot_figures WHERE snapshot_id = :snapshot_id",
                {"snapshot_id": snapshot_id},
            )
            if row is None:
                return None
            data = json.loads(row["figures"] or "{}")
            return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------------- row helpers

_PENDING = "SELECT * FROM journal WHERE status = 'pending' ORDER BY id"
_OPEN_GRANTS = (
    'SELECT id FROM "grant" WHERE snapshot_id = :snapshot_id AND account = :account'
    " AND revoked_at IS NULL ORDER BY id"
)


def _owned_record(row: Row) -> OwnedRecord:
    return OwnedRecord(
        snapshot_id=row["snapshot_id"],
        policy=row["policy"],
        cluster=row["cluster"],
        made_for=cast(MadeFor, row["made_for"]),
        data_time=row["data_time"],
        source_id=row["source_id"],
        fire_time=row["fire_time"],
        deleted_at=row["deleted_at"],
    )


def _pending(row: Row) -> PendingEntry:
    return PendingEntry(
        entry_id=row["id"],
        key=row["key"],
        policy=row["policy"],
        kind=cast(ActionKind, row["kind"]),
        snapshot_id=row["snapshot_id"],
        cluster=row["cluster"],
        account=row["account"],
        source_id=row["source_id"],
    )


def _journal_view(row: Row) -> JournalView:
    return JournalView(
        id=row["id"],
        run_id=row["run_id"],
        key=row["key"],
        policy=row["policy"],
        cluster=row["cluster"],
        kind=row["kind"],
        snapshot_id=row["snapshot_id"],
        account=row["account"],
        source_id=row["source_id"],
        reason=row["reason"],
        status=row["status"],
        outcome=row["outcome"],
        error=row["error"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _api_calls(raw: str) -> dict[str, int]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


@dataclass(frozen=True)
class VerificationView:
    """A restore drill, for ``status`` (``detail``: each check's result, or the error)."""

    id: int
    policy: str
    cluster: str
    snapshot_id: str
    fire_time: datetime
    scratch_cluster: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    detail: Mapping[str, Any]
    scratch_deleted_at: datetime | None


def _verification_view(row: Row) -> VerificationView:
    try:
        detail = json.loads(row["detail"] or "{}")
    except ValueError:
        detail = {}
    return VerificationView(
        id=row["id"],
        policy=row["policy"],
        cluster=row["cluster"],
        snapshot_id=row["snapshot_id"],
        fire_time=row["fire_time"],
        scratch_cluster=row["scratch_cluster"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        detail=detail if isinstance(detail, dict) else {},
        scratch_deleted_at=row["scratch_deleted_at"],
    )


def _verification_record(row: Row) -> VerificationRecord:
    return VerificationRecord(
        policy=row["policy"],
        cluster=row["cluster"],
        snapshot_id=row["snapshot_id"],
        fire_time=row["fire_time"],
        scratch_cluster=row["scratch_cluster"],
        status=cast(VerificationStatus, row["status"]),
        scratch_deleted=row["scratch_deleted_at"] is not None,
    )
