"""The sandbox and the crash points are test-side: a run never imports moto or
``snapworker.sandbox``, the product carries no crash point, and the tests install them
(``tests/rigs/crash.py``) as botocore hooks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from snapworker.sandbox import moto_ext
from tests.e2e_support import ROOT, Sandbox
from tests.rigs import crash

pytestmark = pytest.mark.e2e

# Runs the CLI (argv[2:]) in this process and, at exit, writes to argv[1] every module of
# moto or snapworker.sandbox that got imported.
PROBE = """\
import atexit, json, sys

def dump():
    names = sorted(m for m in sys.modules if m.split(".")[0] == "moto"
                   or m == "snapworker.sandbox" or m.startswith("snapworker.sandbox."))
    with open(out, "w") as f:
        json.dump(names, f)

atexit.register(dump)
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["snapworker", *args]
from snapworker.entrypoints.cli import main
main()
"""

MUTATING = (
    "CreateClusterSnapshot",
    "CopyClusterSnapshot",
    "CreateTags",
    "AuthorizeSnapshotAccess",
    "RevokeSnapshotAccess",
    "DeleteClusterSnapshot",
)


def probe(box: Sandbox, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    out = box.tmp / "imported.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        env=box.env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=box.tmp,
    )
    return done, json.loads(out.read_text())


@pytest.mark.parametrize("command", [["plan"], ["plan", "--format", "json"], ["run"], ["status"]])
def test_run_and_plan_never_import_the_sandbox_or_moto(
    sandbox: Sandbox, command: list[str]
) -> None:
    sandbox.cluster("prod-a", env="prod")
    sandbox.automated("prod-a", 1)
    if command == ["status"]:  # status reads an existing state DB only: a plan makes it
        assert sandbox.cli("plan").returncode == 0
    done, imported = probe(sandbox, *command)
    assert done.returncode == 0, done.stderr[-3000:]
    assert imported == []
    if command == ["run"]:  # it did act: the probe watched a real run
        assert moto_ext.call_counts().get("CopyClusterSnapshot") == 1


def test_the_tick_and_the_gateway_import_neither() -> None:
    code = (
        "import sys\n"
        "import snapworker.service.tick, snapworker.adapters.aws.redshift\n"
        "import snapworker.entrypoints.cli, snapworker.entrypoints.daemon\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'moto'"
        " or m.startswith('snapworker.sandbox') or m == 'snapworker.crashpoints'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_product_has_no_crash_point(sandbox: Sandbox) -> None:
    """``snapworker run`` itself ignores SNAPWORKER_KILL_AT: only the rig reads it."""
    assert not (ROOT / "snapworker" / "crashpoints.py").exists()
    sandbox.cluster("prod-a", env="prod")
    sandbox.automated("prod-a", 1)
    done = subprocess.run(
        [sys.executable, "-m", "snapworker", "run"],
        env=sandbox.env(SNAPWORKER_KILL_AT="before:1"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=sandbox.tmp,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [j["status"] for j in sandbox.journal()] == ["completed"]  # the copy, journalled


@pytest.mark.parametrize(
    ("kill_at", "made"), [("before:1", 0), ("after:1", 1), ("before:2", 1), ("after:2", 2)]
)
def test_the_crash_rig_kills_at_the_chosen_mutation(
    sandbox: Sandbox, kill_at: str, made: int
) -> None:
    """One automated snapshot to copy: mutation 1 is its copy, 2 the copy's tagging."""
    sandbox.cluster("prod-a", env="prod")
    sandbox.automated("prod-a", 1)
    killed = sandbox.cli("run", SNAPWORKER_KILL_AT=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    counts = moto_ext.call_counts()
    assert sum(counts.get(op, 0) for op in MUTATING) == made, counts
    assert [j["status"] for j in sandbox.journal()] == ["pending"]


@pytest.mark.parametrize("spec", ["", "before", "during:1", "after:0", "after:x", "before:-1"])
def test_the_crash_rig_ignores_what_is_not_a_kill_point(spec: str) -> None:
    assert crash.parse(spec) is None


def test_the_crash_rig_parses_kill_points() -> None:
    assert crash.parse("before:3") == ("before", 3)
    assert crash.parse("after:10") == ("after", 10)


def test_the_rig_is_not_shipped() -> None:
    assert Path(crash.__file__).resolve().is_relative_to(ROOT / "tests")
