"""Opening the state DB: the SQLAlchemy engine, its connection set-up, and the sessions the
repositories run in.

Every repository method is one short transaction (:meth:`Database.session`), committed before
it returns, so that a journal entry survives a SIGKILL right after it (the executor writes it
before the AWS call). On SQLite every connection runs in WAL mode with a busy timeout and
foreign keys on, and snapworker opens the transactions itself: a write with ``BEGIN
IMMEDIATE`` (the write lock up front, waiting up to the busy timeout, so that a
read-then-write such as taking a lease never fails half way on a stale snapshot, and two
processes never both take it), a read with a deferred ``BEGIN``. An in-memory SQLite database
is one connection (``StaticPool``) that the threads of the process take in turns.

Failures come out as :class:`StateStoreError` naming the URL (password masked) and the
DBAPI's one-line reason.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Delete, Update, event
from sqlalchemy.engine import URL, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from snapworker.adapters.store.errors import StateStoreError, describe_error
from snapworker.config.urls import masked_url, parse_sqlite_url, sqlite_file

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "SQLITE_BEGIN_IMMEDIATE",
    "Database",
    "aware",
    "aware_opt",
    "begin_as_asked",
    "changed",
    "create_sa_engine",
    "open_database",
]

DEFAULT_BUSY_TIMEOUT_MS = 5000

SQLITE_BEGIN_IMMEDIATE = "snapworker_begin_immediate"
"""Connection execution option: on SQLite the transaction then opens with ``BEGIN IMMEDIATE``
(the write lock up front) instead of a deferred ``BEGIN``."""


class Database:
    """An engine on the state DB and the sessions of its transactions; ``url`` is the masked
    URL, for messages."""

    read_only = False
    """Opened read-only (a SQLite file in a folder it cannot write its -wal/-shm files in):
    every write fails."""

    def __init__(self, engine: Engine, *, in_memory: bool = False) -> None:
        self.engine = engine
        self.url = masked_url(engine.url)
        self._writer = engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        # One shared in-memory connection: one transaction on it at a time.
        self._turns = threading.RLock() if in_memory else None
        # SQLite has one writer at a time. The threads of one process (the fleet's pairs, each
        # with its clusters' threads) queue for it here, in order, rather than in SQLite's busy
        # handler, which polls with growing sleeps and can starve one of many writers past the
        # busy timeout ("database is locked"). Other processes still meet the busy timeout.
        sqlite_file_db = engine.dialect.name == "sqlite" and not in_memory
        self._writers = threading.RLock() if sqlite_file_db else None

    def turn(self) -> threading.RLock | nullcontext[None]:
        """Held while using a connection: the in-memory database's single one, in turns."""
        return self._turns if self._turns is not None else nullcontext()

    @contextmanager
    def session(self, what: str, *, write: bool) -> Iterator[Session]:
        """One transaction: committed on return when ``write`` (which takes the write lock up
        front), else rolled back. A database failure raises :class:`StateStoreError` saying
        ``what`` failed."""
        bind = self._writer if write else self.engine
        queue = self._writers if write and self._writers is not None else nullcontext()
        try:
            with queue, self.turn(), Session(bind, expire_on_commit=False) as session:
                yield session
                if write:
                    session.commit()
        except SQLAlchemyError as exc:
            raise StateStoreError(
                f"state DB {self.url}: {what} failed: {describe_error(exc)}"
            ) from exc

    def close(self) -> None:
        self.engine.dispose()


def changed(session: Session, statement: Update | Delete) -> int:
    """Run an UPDATE or DELETE; the rows it changed. The repositories hold no loaded object of
    the table across such a statement, so the session is not synchronized with it."""
    result = session.exec(statement, execution_options={"synchronize_session": False})
    return int(result.rowcount)


def aware(value: datetime, name: str = "at") -> datetime:
    """The same instant in UTC; a naive datetime is a programming error."""
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def aware_opt(value: datetime | None, name: str) -> datetime | None:
    return None if value is None else aware(value, name)


# ------------------------------------------------------------------------------- opening


def open_database(
    url: str,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    *,
    create: bool = True,
    read_only_fallback: bool = False,
) -> Database:
    """The database at a SQLAlchemy URL; nothing is connected yet, the schema not checked.

    SQLite: no folder is ever created; a missing one is an error naming it. A missing file is
    created empty with mode 0600 before anything is written to it when ``create``; else it is
    an error (``no state DB at PATH``). A database in a folder where SQLite cannot make its
    ``-wal`` and ``-shm`` files is an error naming the folder, unless ``read_only_fallback``:
    it is then opened read-only (``Database.read_only``) when that reads it whole. Raises
    :class:`StateStoreError` (URL shown, password masked) for a file that cannot be made or
    used, or a URL or driver that cannot be used.
    """
    shown = masked_url(url)
    path = sqlite_file(url)
    read_only = False
    if path is not None:
        read_only = _prepare_sqlite_file(path, shown, create, read_only_fallback)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StateStoreError(f"state DB {shown}: not a valid SQLAlchemy URL") from None
    sqlite = parse_sqlite_url(url)
    in_memory = sqlite is not None and sqlite.in_memory
    if read_only and path is not None:
        # immutable=1: SQLite reads the file as it is, with no -shm and no lock; only when no
        # -wal holds changes beside it (checked above), and nobody can write here anyway.
        parsed = parsed.set(
            database=f"file:{quote(path.resolve().as_posix())}?immutable=1",
            query={"uri": "true"},
        )
    try:
        engine = create_sa_engine(parsed, busy_timeout_ms, in_memory=in_memory, read_only=read_only)
    except (SQLAlchemyError, ImportError) as exc:
        raise StateStoreError(
            f"state DB {shown}: unknown or uninstalled database driver "
            f"{parsed.drivername!r}: {describe_error(exc)}"
        ) from exc
    db = Database(engine, in_memory=in_memory)
    db.read_only = read_only
    if read_only:
        db.url = shown
    return db


def create_sa_engine(
    url: URL, busy_timeout_ms: int, *, in_memory: bool = False, read_only: bool = False
) -> Engine:
    """An engine for ``url``. On SQLite every connection runs in WAL mode with the busy
    timeout and foreign keys on, and transactions begin as :func:`begin_as_asked` says; an
    ``in_memory`` database is one connection shared by every thread (each new connection
    would be a new, empty database). A ``read_only`` one changes no journal mode."""
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    connect_args: dict[str, Any] = {"timeout": busy_timeout_ms / 1000}
    if in_memory:
        connect_args["check_same_thread"] = False
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (begin_as_asked), not the sqlite3 module's legacy mode.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            if not read_only:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    begin_as_asked(engine)
    return engine


def begin_as_asked(engine: Engine) -> None:
    """SQLite: open each transaction of ``engine`` ourselves, ``BEGIN IMMEDIATE`` (the write
    lock up front) when the connection has the :data:`SQLITE_BEGIN_IMMEDIATE` execution
    option, else a deferred ``BEGIN``."""

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(SQLITE_BEGIN_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _prepare_sqlite_file(path: Path, shown: str, create: bool, read_only_fallback: bool) -> bool:
    """Check (and with ``create`` make) the SQLite file before SQLite opens it; True when it
    is to be read read-only (see :func:`open_database`)."""
    folder = path.parent
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise StateStoreError(
            f"state DB {shown}: the folder {folder} {what} (snapworker creates no folder: "
            "create it, or correct state_url)"
        )
    if path.is_dir():
        raise StateStoreError(f"state DB {shown}: {path} is a directory")
    if not path.exists():
        if not create:
            raise StateStoreError(f"state DB {shown}: no state DB at {path}")
        _create_file(path, shown)
        return False
    if _sqlite_can_journal(path):
        return False
    reason = (
        f"the folder {folder} is not writable: SQLite must create {path.name}-wal and "
        f"{path.name}-shm beside the database (WAL mode); make the folder writable for the "
        "user running snapworker"
    )
    if not read_only_fallback:
        raise StateStoreError(f"state DB {shown}: {reason}")
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StateStoreError(
            f"state DB {shown}: cannot be read: {reason}; it cannot even be read read-only, "
            f"since {wal.name} holds changes not yet in {path.name} that SQLite reads only "
            f"through {path.name}-shm"
        )
    return True


def _sqlite_can_journal(path: Path) -> bool:
    """Whether SQLite can make (or already has) the ``-wal`` and ``-shm`` files of ``path``."""
    if os.access(path.parent, os.W_OK | os.X_OK):
        return True
    return all(
        os.access(path.with_name(path.name + suffix), os.R_OK | os.W_OK)
        for suffix in ("-wal", "-shm")
    )


def _create_file(path: Path, shown: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # made meanwhile: an existing database keeps its mode
    except OSError as exc:
        raise StateStoreError(
            f"state DB {shown}: cannot create {path}: {exc.strerror or exc}"
        ) from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)
