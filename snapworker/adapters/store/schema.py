"""Creating and upgrading the state DB's schema with the Alembic migrations shipped with us.

The schema has one source, the SQLModel tables (:mod:`snapworker.adapters.store.tables`); the
migrations build exactly those tables (a test runs Alembic's autogenerate comparison on a
migrated database and finds no difference), and nothing calls ``create_all``.

cron starts snapworker often, so a current schema costs one plain query and no Alembic
import: :func:`ensure_schema` reads ``alembic_version`` and returns at once when it holds
:data:`HEAD_REVISION`. Anything else (no table, an older revision) imports Alembic and runs
``upgrade head`` inside one transaction that holds the write lock (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: an advisory lock), re-reading the revision under the lock so that
two processes starting together migrate once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, column, func, inspect, select, table
from sqlalchemy.exc import SQLAlchemyError

import snapworker
from snapworker.adapters.store.engine import SQLITE_BEGIN_IMMEDIATE, Database
from snapworker.adapters.store.errors import StateStoreError, describe_error

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD_REVISION",
    "alembic_config",
    "check_schema",
    "ensure_schema",
    "is_empty",
    "migrations_dir",
]

HEAD_REVISION = "0006"
"""The newest migration this snapworker ships; a test checks it is Alembic's script head."""

_PG_MIGRATION_LOCK = 0x736E6170  # "snap": pg_advisory_xact_lock key held while migrating


def migrations_dir() -> Path:
    """Where the Alembic environment is: inside the installed package (the wheel ships the
    top-level ``migrations/`` as ``snapworker/_migrations``), else the source checkout's."""
    package = Path(snapworker.__file__).resolve().parent
    candidates = (package / "_migrations", package.parent / "migrations")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise StateStoreError(
        f"snapworker's database migrations are missing (looked in {looked}); reinstall snapworker"
    )


def alembic_config() -> Config:
    """An Alembic configuration on the shipped migrations (no URL: pass a connection)."""
    # Imported here only: a current schema never needs Alembic (see the module docstring).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    return config


def _read_revisions(db: Database) -> tuple[str, ...] | None:
    """The fast path: one plain query. None when it cannot be read (no table yet, or worse:
    the slow path will then say what is wrong)."""
    try:
        with db.turn(), db.engine.connect() as conn:
            versions: Select[Any] = select(column("version_num")).select_from(
                table("alembic_version")
            )
            return tuple(str(row[0]) for row in conn.execute(versions))
    except SQLAlchemyError:
        return None


def _newer_error(url: str, revisions: list[str]) -> StateStoreError:
    shown = ", ".join(revisions)
    if all(r.isdigit() for r in revisions) and any(int(r) > int(HEAD_REVISION) for r in revisions):
        return StateStoreError(
            f"state DB {url}: schema {shown} is newer than this snapworker "
            f"(HEAD {HEAD_REVISION}); upgrade snapworker"
        )
    return StateStoreError(
        f"state DB {url}: schema revision {shown} is unknown to this snapworker "
        f"(HEAD {HEAD_REVISION}): written by a newer snapworker, or not a snapworker state DB"
    )


def is_empty(db: Database) -> bool:
    """Whether the database holds no table at all (a file or database nothing was ever
    written to). False when it cannot be read: :func:`ensure_schema` then says why."""
    try:
        with db.turn(), db.engine.connect() as conn:
            return not inspect(conn).get_table_names()
    except SQLAlchemyError:
        return False


def check_schema(db: Database) -> None:
    """For a database opened read-only: its schema must already be :data:`HEAD_REVISION`
    (nothing can be migrated); else :class:`StateStoreError` says why it cannot be read."""
    revisions = _read_revisions(db)
    if revisions == (HEAD_REVISION,):
        return
    if revisions is None:
        raise StateStoreError(
            f"state DB {db.url}: opened read-only (its folder is not writable), and it holds "
            "no snapworker schema to read"
        )
    if any(r not in _KNOWN for r in revisions):
        raise _newer_error(db.url, list(revisions))
    raise StateStoreError(
        f"state DB {db.url}: opened read-only (its folder is not writable), and its schema "
        f"{', '.join(revisions)} must first be upgraded to {HEAD_REVISION}, which needs a "
        "writable folder"
    )


_KNOWN = frozenset(f"{n:04d}" for n in range(1, int(HEAD_REVISION) + 1))


def ensure_schema(db: Database) -> bool:
    """Bring the schema to :data:`HEAD_REVISION`; True if it had to migrate.

    Raises :class:`StateStoreError` when the database cannot be read or migrated, or holds a
    revision this snapworker does not know (a newer one: upgrade snapworker).
    """
    if _read_revisions(db) == (HEAD_REVISION,):
        return False
    url = db.url
    try:
        return _migrate(db, url)
    except StateStoreError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        raise StateStoreError(
            f"state DB {url}: cannot bring the schema to {HEAD_REVISION}: {describe_error(exc)}"
        ) from exc
    except Exception as exc:
        # Alembic's own errors (CommandError, ResolutionError) arrive here.
        if type(exc).__module__.startswith("alembic"):
            raise StateStoreError(
                f"state DB {url}: cannot bring the schema to {HEAD_REVISION}: {describe_error(exc)}"
            ) from exc
        raise


def _migrate(db: Database, url: str) -> bool:
    # Imported here only: a current schema never needs Alembic (see the module docstring).
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    known = {rev.revision for rev in script.walk_revisions()}
    heads = set(script.get_heads())

    with db.turn(), db.engine.connect() as conn:
        conn.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        with conn.begin():
            _lock_for_migration(conn)
            current = list(MigrationContext.configure(conn).get_current_heads())
            unknown = [rev for rev in current if rev not in known]
            if unknown:
                raise _newer_error(url, unknown)
            if set(current) == heads:
                return False  # another process migrated while we waited for the lock
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    return True


def _lock_for_migration(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
