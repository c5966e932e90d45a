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
