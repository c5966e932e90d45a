"""Shared fixtures. ``sandbox``: moto's server with snapworker's extension (one per test
session, reset before each test) plus a temp dir holding the config and the state DB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from snapworker.aws.sandbox import serve

    server, url = serve(port=0)
    yield url
    server.stop()


@pytest.fixture
def sandbox(moto_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    from tests.e2e_support import Sandbox, reset

    reset(moto_url)
    box = Sandbox(moto_url, tmp_path)
    box.write_config()
    yield box
    reset(moto_url)


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
