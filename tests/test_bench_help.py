"""The benchmarks that the suite never runs (they take minutes) at least start: ``--help``
prints their options without touching AWS, moto or c7n."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("script", "options"),
    [
        ("fleet.py", ["--accounts", "--regions", "--clusters", "--snapshots", "--skip-c7n"]),
        ("listing.py", ["--clusters", "--workers", "--latency", "--snapshots", "--orphans"]),
    ],
)
def test_help(script: str, options: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:")
    for option in options:
        assert option in r.stdout
    assert "--serve" not in r.stdout  # the servers' own entry is not an option for users
