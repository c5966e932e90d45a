"""A scratch PostgreSQL database for the state store's tests, on the server ``.ci/services``
starts (loopback, trust auth; facts in ``/tmp/snapworker-pg.env``). Tests that need it skip
when the server is absent, as the verification tests do.

One database per test session (per xdist worker), dropped at the end; :func:`clean` empties
its tables between tests, so each test starts from a migrated, empty state DB.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_ENV_FILE = Path("/tmp/snapworker-pg.env")
STORE_TABLES = (
    "owned_snapshot",
    '"grant"',
    "copied_source",
    "journal",
    "run",
    "lease",
    "drift",
    "verification",
    "snapshot_figures",
    "sizes",
)


def _server() -> tuple[str, int]:
    if not PG_ENV_FILE.is_file():
        pytest.skip(f"PostgreSQL test server not running ({PG_ENV_FILE} missing: run .ci/services)")
    facts = dict(line.split("=", 1) for line in PG_ENV_FILE.read_text().splitlines() if "=" in line)
    return facts.get("PGHOST", "127.0.0.1"), int(facts.get("PGPORT", "0"))


def connect(dbname: str, **kw: Any) -> Any:
    import psycopg

    host, port = _server()
    return psycopg.connect(
        host=host, port=port, dbname=dbname, user="postgres", connect_timeout=3, **kw
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The name of a scratch database for this session (skips without a server)."""
    try:
        admin = connect("postgres", autocommit=True)
    except Exception as e:  # any failure means: not available here
        pytest.skip(f"PostgreSQL test server not reachable ({type(e).__name__})")
    name = f"snapworker_store_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with connect("postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def url_of(name: str) -> str:
    host, port = _server()
    return f"postgresql+psycopg://postgres@{host}:{port}/{name}"


def clean(name: str) -> None:
    """Empty the store's tables (the schema and its revision stay), ids restarting at 1."""
    with connect(name, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('public.run') IS NOT NULL").fetchone()
        if exists and exists[0]:
            conn.execute(f"TRUNCATE {', '.join(STORE_TABLES)} RESTART IDENTITY")


def query(name: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on another connection (another process would see the same)."""
    with connect(name) as conn:
        return [tuple(row) for row in conn.execute(sql).fetchall()]
