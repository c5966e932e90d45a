"""The store's driver for URLs other than plain SQLite (PostgreSQL): SQLAlchemy, imported only
when such a URL is opened (or a migration runs).

It runs the store's SQL text through ``sqlalchemy.text()``, which turns the ``:name``
placeholders into the DBAPI's own parameter style, on an engine connection. The SQLite
connection set-up lives here too (:func:`create_sa_engine`): Alembic migrates a SQLite file
through such an engine, set up exactly like the stdlib driver's connections.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from snapworker.adapters.store.driver import (
    SQLITE_BEGIN_IMMEDIATE,
    Columns,
    Driver,
    DriverError,
    Row,
    StateStoreError,
    Tx,
    decode_row,
    describe_error,
    encode_params,
    masked_url,
)

__all__ = ["SqlAlchemyDriver", "begin_as_asked", "create_sa_engine"]


def create_sa_engine(url: str | URL, busy_timeout_ms: int) -> Engine:
    """An engine for ``url``; on SQLite every connection runs in WAL mode with the busy
    timeout and foreign keys on, and a transaction begins ``BEGIN IMMEDIATE`` when the
    connection has the :data:`SQLITE_BEGIN_IMMEDIATE` execution option (else ``BEGIN``)."""
    parsed = url if isinstance(url, URL) else make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(parsed, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below), not the sqlite3 module's legacy mode.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
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


class _SaTx(Tx):
    def __init__(self, conn: Connection, columns: Columns, sqlite: bool) -> None:
        self._conn = conn
        self._columns = columns
        self._sqlite = sqlite

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        result = self._conn.execute(text(sql), encode_params(params, self._sqlite))
        return [decode_row(dict(m), self._columns) for m in result.mappings()]

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        result = self._conn.execute(text(sql), encode_params(params, self._sqlite))
        return int(result.rowcount)


class SqlAlchemyDriver(Driver):
    """SQL text on a SQLAlchemy engine (PostgreSQL, or a SQLite URL the stdlib driver does
    not take, such as another DBAPI)."""

    def __init__(self, engine: Engine, columns: Columns) -> None:
        self._engine = engine
        self._columns = columns
        self.url = masked_url(engine.url)
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str, busy_timeout_ms: int, columns: Columns) -> SqlAlchemyDriver:
        shown = masked_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StateStoreError(f"state DB {shown}: not a valid SQLAlchemy URL") from None
        try:
            engine = create_sa_engine(parsed, busy_timeout_ms)
        except (SQLAlchemyError, ImportError) as exc:
            raise StateStoreError(
                f"state DB {shown}: unknown or uninstalled database driver "
                f"{parsed.drivername!r}: {describe_error(exc)}"
            ) from exc
        return cls(engine, columns)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Tx]:
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
                with conn.begin() as trans:
                    yield _SaTx(conn, self._columns, self.dialect == "sqlite")
                    if not write:
                        trans.rollback()
        except SQLAlchemyError as exc:
            raise DriverError(describe_error(exc)) from exc

    @contextmanager
    def sqlalchemy_engine(self) -> Iterator[Engine]:
        yield self._engine

    def close(self) -> None:
        self._engine.dispose()
