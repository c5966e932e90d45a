"""``snapworker run`` never imports ``prometheus_client`` (only the daemon's endpoint does:
cron starts ``run`` often, and its start-up time counts), nor the HTML report's views.

The check runs the real CLI in a subprocess against moto's server, with a hook injected
before the CLI starts that prints, at exit, whether those modules were imported.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e_support import Sandbox

pytestmark = pytest.mark.e2e

PROBE = """\
import atexit, sys
def report():
    names = ("prometheus_client", "snapworker.adapters.http.health", "snapworker.views.html_report")
    print("IMPORTED", *[n for n in names if n in sys.modules], file=sys.stderr)
atexit.register(report)
from snapworker.entrypoints.cli import main
sys.argv = ["snapworker", *sys.argv[1:]]
main()
"""


def imported(box: Sandbox, *args: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=box.env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=box.tmp,
    )
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("IMPORTED")]
    return done.returncode, line.split()[1:]


def test_run_does_not_import_prometheus_client(sandbox: Sandbox) -> None:
    sandbox.cluster("prod-a", env="prod")
    sandbox.automated("prod-a", 1)
    code, names = imported(sandbox, "run")
    assert code == 0
    assert names == []
    # The probe does see an import when there is one: plan --format html loads the views.
    code, names = imported(sandbox, "plan", "--format", "html")
    assert code == 0 and names == ["snapworker.views.html_report"]
