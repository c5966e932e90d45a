"""Shared fixtures. ``sandbox``: moto's server with snapworker's extension (one per test
session, reset before each test) plus a temp dir holding the config and the state DB.
``store``/``store_url``: an empty state store on SQLite and on PostgreSQL (the latter
skipped when ``.ci/services`` has not started the server); ``db_path``: the SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from snapworker.adapters.store.repository import StateStore


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from snapworker.sandbox.server import serve

    server, url = serve(port=0)
    yield url
    server.stop()


@pytest.fixture
def sandbox(moto_url: str, tmp_path: Path):
    from tests.e2e_support import Sandbox, reset

    reset(moto_url)
    box = Sandbox(moto_url, tmp_path)
    box.write_config()
    yield box
    reset(moto_url)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file in a folder that exists (snapworker creates no folder)."""
    (tmp_path / "state").mkdir(exist_ok=True)
    return tmp_path / "state" / "snapworker.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """A state DB URL with an empty store: a new SQLite file, or this session's scratch
    PostgreSQL database (``pg_database``) with its tables emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{db_path}"
    from tests import pg_support

    name = request.getfixturevalue("pg_database")
    pg_support.clean(name)
    return pg_support.url_of(name)


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    from snapworker.adapters.store.repository import open_store

    s = open_store(store_url)
    yield s
    s.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures harnesses record with ``record_property("figure", line)`` (faults
    injected, inputs refused, ...): under xdist a test's own prints are not shown, its
    report's properties are."""
    lines = [
        value
        for key in ("passed", "failed")
        for report in terminalreporter.stats.get(key, [])
        for name, value in getattr(report, "user_properties", [])
        if name == "figure"
    ]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(str(line))
