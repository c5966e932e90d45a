"""How the state store talks to its database: SQL text with ``:name`` parameters, run by one
of two small drivers.

Why two: cron starts snapworker often, and importing SQLAlchemy (with SQLModel's ORM) costs
more than the rest of a run with nothing to do. So a plain ``sqlite:`` URL runs on the
stdlib ``sqlite3`` module directly (:class:`SqliteDriver`, no SQLAlchemy import), and any
other URL (PostgreSQL) runs the same SQL through SQLAlchemy's ``text()`` on an engine
(:mod:`snapworker.adapters.store.driver_sa`, imported only then). The SQLModel models in
:mod:`snapworker.adapters.store.tables` and the Alembic migrations remain the schema of record.

Values cross this layer converted exactly as SQLModel's ``UTCDateTime`` and SQLAlchemy's
SQLite types store them, so state DBs written before keep working and SQLModel reads what
this layer writes: on SQLite a datetime is the UTC wall time as text
``YYYY-MM-DD HH:MM:SS.ffffff`` and a boolean is 0/1; datetimes read back aware UTC. Which
result columns are datetimes or booleans the caller says once (:class:`Columns`).

Error messages name the URL with any password masked (:func:`masked_url`) and give the
DBAPI's own one-line reason (:func:`describe_error`), on either driver.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from snapworker.errors import SnapworkerError, UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "Columns",
    "Driver",
    "DriverError",
    "Row",
    "SqliteDriver",
    "SqliteUrl",
    "StateStoreError",
    "Tx",
    "decode_datetime",
    "describe_error",
    "encode_datetime",
    "masked_url",
    "open_driver",
    "parse_sqlite_url",
]

Row = dict[str, Any]

SQLITE_BEGIN_IMMEDIATE = "snapworker_begin_immediate"
"""SQLAlchemy connection execution option: the SQLite engines made here then open the
transaction with ``BEGIN IMMEDIATE`` (the write lock up front) instead of a deferred ``BEGIN``."""


class StateStoreError(UsageError):
    """The state DB cannot be opened, migrated, read or written; the message names the URL
    (password masked) and says why."""


class DriverError(SnapworkerError):
    """A database call failed; ``str()`` is the one-line reason (:func:`describe_error`)."""


@dataclass(frozen=True)
class Columns:
    """Result columns, by name, that need converting from what the database returns."""

    datetimes: frozenset[str] = field(default_factory=frozenset)
    booleans: frozenset[str] = field(default_factory=frozenset)


# ----------------------------------------------------------------------------- URLs, errors

# SQLAlchemy's own URL pattern (sqlalchemy.engine.url._parse_url), so both read a URL alike.
_URL = re.compile(
    r"""
    (?P<name>[\w\+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/\?]+)\]|(?P<ipv4host>[^/:\?]+))?(?::(?P<port>[^/\?]*))?)?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)

_STDLIB_SQLITE = frozenset({"sqlite", "sqlite+pysqlite"})
# Query keys the sqlite3 module takes (as SQLAlchemy's pysqlite dialect reads them).
_SQLITE_ARGS = ("uri", "timeout", "isolation_level", "detect_types", "check_same_thread")


@dataclass(frozen=True)
class SqliteUrl:
    """A ``sqlite:`` URL the stdlib driver runs: a database name and its query options."""

    drivername: str
    database: str  # "" for an in-memory database
    query: Mapping[str, str]

    @property
    def uri(self) -> bool:
        return self.query.get("uri", "").lower() in ("true", "1", "yes", "on")

    @property
    def in_memory(self) -> bool:
        """Each new connection would be a new, empty database: one connection is shared."""
        if self.database in ("", ":memory:"):
            return True
        if self.uri:
            return (
                self.query.get("mode") == "memory"
                or "mode=memory" in self.database
                or self.database.startswith("file::memory:")
            )
        return False

    def connect_target(self) -> str:
        """The ``sqlite3.connect`` database argument, as SQLAlchemy's pysqlite builds it."""
        if self.uri:
            extra = {k: v for k, v in self.query.items() if k not in _SQLITE_ARGS}
            if extra:
                return self.database + "?" + "&".join(f"{k}={extra[k]}" for k in sorted(extra))
            return self.database
        if self.database in ("", ":memory:"):
            return ":memory:"
        return os.path.abspath(self.database)


def parse_sqlite_url(url: str) -> SqliteUrl | None:
    """The URL when the stdlib ``sqlite3`` driver can run it (``sqlite://`` or
    ``sqlite+pysqlite://``, no user, host or port); None for anything else, which goes to
    SQLAlchemy (and its own errors for a malformed URL)."""
    m = _URL.match(url)
    if m is None or m.group("name") not in _STDLIB_SQLITE:
        return None
    if any(m.group(k) for k in ("username", "password", "ipv4host", "ipv6host", "port")):
        return None
    query: dict[str, str] = {}
    for key, value in parse_qsl(m.group("query") or ""):
        if key in query:
            return None  # a repeated key: let SQLAlchemy say what it makes of it
        query[key] = value
    return SqliteUrl(m.group("name"), unquote(m.group("database") or ""), query)


def masked_url(url: object) -> str:
    """The URL as it may be shown: any password replaced by ``***``."""
    text = str(url) if not isinstance(url, str) else url
    if not isinstance(url, str):
        render = getattr(url, "render_as_string", None)  # a SQLAlchemy URL object
        if callable(render):
            return str(render(hide_password=True))
    if parse_sqlite_url(text) is not None:
        return text  # no password in it
    try:
        from sqlalchemy.engine import make_url

        return make_url(text).render_as_string(hide_password=True)
    except Exception:
        # Unparseable: where the password would be is anyone's guess, so show the scheme only.
        scheme, sep, _rest = text.partition("://")
        return f"{scheme}://(rest not shown)" if sep else "(unparseable URL, not shown)"


def describe_error(exc: BaseException) -> str:
    """A one-line reason: the DBAPI's own message rather than SQLAlchemy's long wrapper."""
    orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError wraps the DBAPI's error
    if isinstance(orig, BaseException) and type(exc).__module__.startswith("sqlalchemy"):
        return f"{type(orig).__name__}: {orig}"
    message = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# ------------------------------------------------------------------------------ values

_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's sqlite DATETIME


def encode_datetime(value: datetime, sqlite: bool) -> datetime | str:
    """As ``UTCDateTime`` binds it: aware only, in UTC; on SQLite as SQLAlchemy's text."""
    if value.utcoffset() is None:
        raise ValueError(f"datetimes must be timezone-aware, got {value!r}")
    value = value.astimezone(UTC)
    if not sqlite:
        return value
    return _SQLITE_DATETIME % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def decode_datetime(value: object) -> datetime | None:
    """As ``UTCDateTime`` reads it: aware UTC (a stored value without offset is UTC)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(parsed, datetime):
        raise TypeError(f"not a datetime column value: {value!r}")
    if parsed.utcoffset() is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def encode_params(params: Mapping[str, Any] | None, sqlite: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if isinstance(value, datetime):
            value = encode_datetime(value, sqlite)
        elif isinstance(value, bool) and sqlite:
            value = int(value)
        out[key] = value
    return out


def decode_row(row: Row, columns: Columns) -> Row:
    for name in columns.datetimes.intersection(row):
        row[name] = decode_datetime(row[name])
    for name in columns.booleans.intersection(row):
        if row[name] is not None:
            row[name] = bool(row[name])
    return row


# ------------------------------------------------------------------------------ drivers


class Tx:
    """One transaction: run SQL text with ``:name`` parameters."""

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """The result rows, as dicts by column name, datetimes and booleans converted."""
        raise NotImplementedError

    def first(self, sql: str, params: Mapping[str, Any] | None = None) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run an INSERT, UPDATE or DELETE; the rows it changed."""
        raise NotImplementedError


class Driver:
    """A database the store runs SQL on; ``url`` is the masked URL, ``dialect`` its kind."""

    url: str
    dialect: str

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Tx]:
        """A transaction, committed on return when ``write`` (else rolled back); a write
        takes the write lock up front. Database failures raise :class:`DriverError`."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextmanager
    def sqlalchemy_engine(self) -> Iterator[Engine]:
        """A SQLAlchemy engine on the same database with the same connection set-up, for
        Alembic (only a migration needs it)."""
        raise NotImplementedError
        yield  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError


class _SqliteTx(Tx):
    def __init__(self, conn: sqlite3.Connection, columns: Columns) -> None:
        self._conn = conn
        self._columns = columns

    def all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        cursor = self._conn.execute(sql, encode_params(params, sqlite=True))
        try:
            names = [d[0] for d in cursor.description or ()]
            return [decode_row(dict(zip(names, r, strict=True)), self._columns) for r in cursor]
        finally:
            cursor.close()

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        cursor = self._conn.execute(sql, encode_params(params, sqlite=True))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()


class SqliteDriver(Driver):
    """The stdlib ``sqlite3`` module, set up as the store always was: WAL, a busy timeout,
    foreign keys on, and transactions opened by us (``isolation_level=None``): ``BEGIN
    IMMEDIATE`` for writes, a deferred ``BEGIN`` for reads.

    Connections are pooled for the threads of one process (each transaction takes one); an
    in-memory database has a single connection, taken in turns.
    """

    dialect = "sqlite"

    def __init__(self, url: str, parsed: SqliteUrl, busy_timeout_ms: int, columns: Columns) -> None:
        self.url = masked_url(url)
        self._raw_url = url
        self._parsed = parsed
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._columns = columns
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._shared: sqlite3.Connection | None = None
        self._shared_lock = threading.Lock()
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._parsed.connect_target(),
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            uri=self._parsed.uri,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL").close()
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}").close()
            conn.execute("PRAGMA foreign_keys=ON").close()
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._parsed.in_memory:
            with self._shared_lock:
                if self._shared is None:
                    self._shared = self._connect()
                yield self._shared
            return
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            conn.close()  # its state is unknown: a new one next time
            raise
        with self._lock:
            if self._closed:
                conn.close()
            else:
                self._idle.append(conn)

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Tx]:
        try:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN").close()
                try:
                    yield _SqliteTx(conn, self._columns)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK").close()
                    raise
                conn.execute("COMMIT" if write else "ROLLBACK").close()
        except sqlite3.Error as exc:
            raise DriverError(describe_error(exc)) from exc

    @contextmanager
    def sqlalchemy_engine(self) -> Iterator[Engine]:
        from snapworker.adapters.store.driver_sa import begin_as_asked, create_sa_engine

        if self._parsed.in_memory:
            # The migration must run on the very connection the store then uses.
            from sqlalchemy import create_engine
            from sqlalchemy.pool import StaticPool

            with self._connection() as conn:
                engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)
                begin_as_asked(engine)
                try:
                    yield engine
                finally:
                    engine.dispose(close=False)
            return
        engine = create_sa_engine(self._raw_url, self._busy_timeout_ms)
        try:
            yield engine
        finally:
            engine.dispose()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._shared_lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None


def open_driver(url: str, busy_timeout_ms: int, columns: Columns | None = None) -> Driver:
    """The driver for ``url``: stdlib ``sqlite3`` for a plain ``sqlite:`` URL, else
    SQLAlchemy. Raises :class:`StateStoreError` for a URL or driver it cannot use. Nothing
    is connected yet."""
    columns = columns or Columns()
    parsed = parse_sqlite_url(url)
    if parsed is not None:
        return SqliteDriver(url, parsed, busy_timeout_ms, columns)
    from snapworker.adapters.store.driver_sa import SqlAlchemyDriver

    return SqlAlchemyDriver.open(url, busy_timeout_ms, columns)
