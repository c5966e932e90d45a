"""Creating and upgrading the state DB's schema with the Alembic migrations shipped with us.

cron starts snapworker often, so a current schema costs one plain query and no Alembic
import: :func:`ensure_schema` reads ``alembic_version`` and returns at once when it holds
:data:`HEAD_REVISION`. Anything else (no table, an older revision) imports Alembic lazily and
runs ``upgrade head`` inside one transaction that holds the write lock (SQLite: ``BEGIN
IMMEDIATE`` through the store's engine; PostgreSQL: an advisory lock), re-reading the revision
under the lock so that two processes starting together migrate once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import snapworker

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "HEAD_REVISION",
    "SQLITE_BEGIN_IMMEDIATE",
    "StateStoreError",
    "describe_error",
    "ensure_schema",
    "masked_url",
    "migrations_dir",
]

HEAD_REVISION = "0003"
"""The newest migration this snapworker ships; a test checks it is Alembic's script head."""

SQLITE_BEGIN_IMMEDIATE = "snapworker_begin_immediate"
"""Connection execution option: the store's SQLite engine then opens the transaction with
``BEGIN IMMEDIATE`` (the write lock up front) instead of a deferred ``BEGIN``."""

_PG_MIGRATION_LOCK = 0x736E6170  # "snap": pg_advisory_xact_lock key held while migrating


class StateStoreError(Exception):
    """The state DB cannot be opened, migrated, read or written; the message names the URL
    (password masked) and says why."""


def masked_url(url: str | URL) -> str:
    """The URL as it may be shown: any password replaced by ``***``."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except Exception:
        # Unparseable: where the password would be is anyone's guess, so show the scheme only.
        scheme, sep, _rest = str(url).partition("://")
        return f"{scheme}://(rest not shown)" if sep else "(unparseable URL, not shown)"
    return parsed.render_as_string(hide_password=True)


def describe_error(exc: BaseException) -> str:
    """A one-line reason: the DBAPI's own message rather than SQLAlchemy's long wrapper."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    message = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


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


def _read_revisions(engine: Engine) -> tuple[str, ...] | None:
    """The fast path: one plain query. None when it cannot be read (no table yet, or worse:
    the slow path will then say what is wrong)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None
    return tuple(str(row[0]) for row in rows)


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


def ensure_schema(engine: Engine) -> bool:
    """Bring the schema to :data:`HEAD_REVISION`; True if it had to migrate.

    Raises :class:`StateStoreError` when the database cannot be read or migrated, or holds a
    revision this snapworker does not know (a newer one: upgrade snapworker).
    """
    if _read_revisions(engine) == (HEAD_REVISION,):
        return False
    url = masked_url(engine.url)
    try:
        return _migrate(engine, url)
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


def _migrate(engine: Engine, url: str) -> bool:
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    script = ScriptDirectory.from_config(config)
    known = {rev.revision for rev in script.walk_revisions()}
    heads = set(script.get_heads())

    with engine.connect() as conn:
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
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
