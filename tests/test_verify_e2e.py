"""Restore verification end to end: the CLI as a subprocess, moto's server (with the
extension) for RestoreFromClusterSnapshot, DescribeClusters, GetClusterCredentials and
DeleteCluster, and a real PostgreSQL server (started by ``.ci/services``) standing in for
the restored cluster's database through ``verify.connect.host``/``port``.

What a user observes: ``plan`` shows the drill that is due; ``run`` restores, checks and
deletes the scratch cluster; a failing check is a failed run (exit 1, an error log line,
FAILED in ``status``); a kill in the middle leaves a scratch cluster the next run deletes
before redoing the drill; and the temporary password GetClusterCredentials issued appears in
no log line, no report, and nowhere in the SQLite files.
"""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from snapworker.core import ids
from snapworker.core.model import OwnedRecord
from snapworker.core.ownership import ownership_tags
from snapworker.core.schedule import latest_fire
from snapworker.sandbox import moto_ext
from tests.e2e_support import Sandbox

pytestmark = pytest.mark.e2e

PG_ENV_FILE = Path("/tmp/snapworker-pg.env")
POLICY = "prod-verify"
SHOW = ["--show-password"]


def _pg() -> tuple[str, int]:
    """The test PostgreSQL server's host and port, or skip (``.ci/services`` starts it)."""
    if not PG_ENV_FILE.is_file():
        pytest.skip(f"PostgreSQL test server not running ({PG_ENV_FILE} missing: run .ci/services)")
    facts = dict(line.split("=", 1) for line in PG_ENV_FILE.read_text().splitlines() if "=" in line)
    host, port = facts.get("PGHOST", "127.0.0.1"), int(facts.get("PGPORT", "0"))
    try:
        import psycopg

        psycopg.connect(
            host=host, port=port, dbname="dev", user="IAM:snapworker-verify", connect_timeout=3
        ).close()
    except Exception as e:  # any failure means: not available here
        pytest.skip(f"PostgreSQL test server at {host}:{port} not reachable ({type(e).__name__})")
    return host, port


CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
retry:
  attempts: 2
  wait_initial_seconds: 0
  wait_max_seconds: 0
policies:
  - name: {policy}
    select:
      clusters: ["*"]
    create:
      schedule: "0 3 * * *"
    verify:
      schedule: "0 5 * * 0"
      wait_minutes: 1
      poll_seconds: 0.1
      connect:
        db_user: snapworker-verify
        db_name: dev
        duration_seconds: 900
        host: "{host}"
        port: {port}
        sslmode: disable
{figures}      checks:
        - name: sales-present
          sql: "select count(*) from sales"
          expect: {{min: 1}}
        - name: eu-total
          sql: "select sum(amount) from sales where region = 'eu'"
          expect: {{equals: 17.75}}
{extra}"""

FAILING_CHECK = """\
        - name: refunds-present
          sql: "select count(*) from sales where amount < 0"
          expect: {min: 1}
"""

FIGURES = """\
      record_before_snapshot:
        - name: sales-rows
          sql: "select count(*) from sales"
"""

FIGURE_CHECK = """\
        - name: sales-rows
          sql: "select count(*) from sales"
          expect: {same_as_snapshot: true}
"""


@pytest.fixture
def box(sandbox: Sandbox) -> Iterator[Sandbox]:
    host, port = _pg()
    sandbox.pg = (host, port)  # type: ignore[attr-defined]
    moto_ext.reset_issued_passwords()
    moto_ext.set_restore_polls(2)
    write(sandbox)
    sandbox.cluster("prod-a", env="prod")
    yield sandbox
    moto_ext.set_restore_polls(1)
    moto_ext.reset_issued_passwords()


def write(box: Sandbox, extra: str = "", figures: str = "") -> None:
    host, port = box.pg  # type: ignore[attr-defined]
    box.config.write_text(
        CONFIG.format(db=box.db, policy=POLICY, host=host, port=port, extra=extra, figures=figures)
    )


class Runs:
    """Every CLI run of a test, kept so the password search covers all their output."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.outputs: list[str] = []

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        result = self.box.cli(*args, **env)
        self.outputs.extend([result.stdout, result.stderr])
        return result


def seed_owned(box: Sandbox) -> str:
    """The snapshot the policy took at its latest create fire time (tags prove ownership), so
    a test starts with a drill due, without a run to take it."""
    fire = latest_fire("0 3 * * *", "UTC", datetime.now(UTC))
    sid = ids.create_snapshot_id(POLICY, "prod-a", fire)
    rec = OwnedRecord(sid, POLICY, "prod-a", "create", fire, fire_time=fire)
    moto_ext.add_manual_snapshot(
        box.backend(), "prod-a", sid, create_time=fire, tags=ownership_tags(rec)
    )
    return sid


def clusters(box: Sandbox) -> dict[str, dict[str, Any]]:
    out = {}
    for c in box.client().describe_clusters()["Clusters"]:
        out[c["ClusterIdentifier"]] = {
            "status": c["ClusterStatus"],
            "tags": {t["Key"]: t["Value"] for t in c.get("Tags", [])},
        }
    return out


def status_json(runs: Runs) -> dict[str, Any]:
    result = runs("status", "--format", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def expire_leases(box: Sandbox) -> None:
    """The killed process's policy leases lapse after their TTL (snapworker.service.leases); a test
    does not wait for that: it drops them, as expiry would."""
    con = sqlite3.connect(box.db)
    try:
        con.execute("delete from lease")
        con.commit()
    finally:
        con.close()


def log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def assert_password_nowhere(box: Sandbox, runs: Runs) -> None:
    """Every password GetClusterCredentials issued: in no CLI output (logs are stderr,
    reports stdout) and nowhere in the SQLite files (WAL included)."""
    issued = moto_ext.issued_passwords()
    assert issued, "the drill never asked for credentials"
    files = [p for p in box.tmp.iterdir() if p.name.startswith(box.db.name)]
    assert files
    blobs = [p.read_bytes() for p in files]
    for password in issued:
        assert len(password) >= 16
        for text in runs.outputs:
            assert password not in text
        for blob in blobs:
            assert password.encode() not in blob


def test_drill_passes_and_the_scratch_cluster_is_deleted(box: Sandbox) -> None:
    runs = Runs(box)
    first = runs("run")  # takes the scheduled snapshot; nothing to verify yet
    assert first.returncode == 0, first.stderr
    assert "verify" not in [json.loads(line).get("action") for line in first.stderr.splitlines()]

    plan = runs("plan", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    due = [a for a in json.loads(plan.stdout)["actions"] if a["action"] == "verify"]
    assert len(due) == 1
    assert due[0]["cluster"] == "prod-a" and due[0]["snapshot"].startswith("sw-prod-verify-")
    assert "never verified" in due[0]["reason"] and "0 5 * * 0" in due[0]["reason"]
    assert set(clusters(box)) == {"prod-a"}  # plan touched nothing

    second = runs("run")
    assert second.returncode == 0, second.stderr + second.stdout
    passed = [e for e in log_lines(second.stderr) if e["event"] == "verification passed"]
    assert len(passed) == 1 and passed[0]["snapshot"] == due[0]["snapshot"]
    assert set(clusters(box)) == {"prod-a"}  # the scratch cluster is gone
    calls = moto_ext.call_counts()
    assert calls["RestoreFromClusterSnapshot"] == 1 and calls["DeleteCluster"] == 1

    st = status_json(runs)
    (v,) = st["verifications"]
    assert v["snapshot"] == due[0]["snapshot"] and v["status"] == "passed"
    assert v["checks_passed"] == 2 and v["scratch_deleted"]
    table = runs("status")
    assert f"{due[0]['snapshot']}: PASSED" in table.stdout

    third = runs("run")  # not due again until the next fire time
    assert third.returncode == 0 and moto_ext.call_counts()["RestoreFromClusterSnapshot"] == 1
    assert_password_nowhere(box, runs)


def test_failing_check_fails_the_run_and_still_deletes_the_scratch_cluster(box: Sandbox) -> None:
    runs = Runs(box)
    write(box, extra=FAILING_CHECK)
    seed_owned(box)
    second = runs("run")
    assert second.returncode == 1
    errors = [e for e in log_lines(second.stderr) if e.get("level") == "error"]
    assert any(e["event"] == "verification failed" for e in errors)
    assert any("refunds-present" in json.dumps(e) for e in errors)
    assert set(clusters(box)) == {"prod-a"}

    st = status_json(runs)
    (v,) = st["verifications"]
    assert v["status"] == "failed" and v["checks_passed"] == 2 and v["checks"] == 3
    assert [c["name"] for c in v["failed_checks"]] == ["refunds-present"]
    table = runs("status").stdout
    assert "FAILED" in table and "FAILED check refunds-present" in table

    # the drill counted for its fire time: the next run does not redo it
    third = runs("run")
    assert third.returncode == 0 and moto_ext.call_counts()["RestoreFromClusterSnapshot"] == 1
    assert_password_nowhere(box, runs)


@pytest.mark.parametrize("kill_at", ["after:1", "after:2"])
def test_killed_drill_leaves_a_scratch_cluster_the_next_run_deletes(
    box: Sandbox, kill_at: str
) -> None:
    """after:1 kills right after RestoreFromClusterSnapshot (the scratch cluster is not
    tagged yet: only the state DB knows it); after:2 right after its CreateTags."""
    runs = Runs(box)
    seed_owned(box)
    killed = runs("run", SNAPWORKER_KILL_AT=kill_at)
    assert killed.returncode == -9
    expire_leases(box)
    left = [c for c in clusters(box) if c != "prod-a"]
    assert len(left) == 1 and left[0].startswith("swv-prod-verify-")

    plan = json.loads(runs("plan", "--format", "json").stdout)
    assert any(n["cluster"] == left[0] and "scratch" in n["message"] for n in plan["notes"]), plan[
        "notes"
    ]
    assert not [a for a in plan["actions"] if a["cluster"] == left[0]]  # never selected

    again = runs("run")
    assert again.returncode == 0, again.stderr
    events = [e["event"] for e in log_lines(again.stderr)]
    assert "deleted a leftover scratch cluster" in events
    assert "verification passed" in events  # the drill cut short is redone
    assert set(clusters(box)) == {"prod-a"}
    assert moto_ext.call_counts()["DeleteCluster"] == 2
    (v,) = status_json(runs)["verifications"]
    assert v["status"] == "passed"
    assert_password_nowhere(box, runs)


def test_tags_prove_a_leftover_scratch_cluster_when_the_state_db_is_lost(box: Sandbox) -> None:
    runs = Runs(box)
    seed_owned(box)
    assert runs("run", SNAPWORKER_KILL_AT="after:2").returncode == -9
    for p in box.tmp.iterdir():
        if p.name.startswith(box.db.name):
            p.unlink()
    # a cluster tagged like a scratch cluster but not named like one is never deleted
    box.cluster("prod-b", env="prod")
    arn = "arn:aws:redshift:us-east-1:123456789012:cluster:prod-b"
    box.client().create_tags(
        ResourceName=arn,
        Tags=[
            {"Key": "snapworker:scratch", "Value": "true"},
            {"Key": "snapworker:policy", "Value": POLICY},
        ],
    )
    again = runs("run")
    assert again.returncode == 0, again.stderr
    assert set(clusters(box)) == {"prod-a", "prod-b"}


def test_figures_recorded_before_the_snapshot_are_compared_after_the_restore(
    box: Sandbox,
) -> None:
    runs = Runs(box)
    write(box, extra=FIGURE_CHECK, figures=FIGURES)
    first = runs("run")
    assert first.returncode == 0, first.stderr
    second = runs("run")
    assert second.returncode == 0, second.stderr
    (v,) = status_json(runs)["verifications"]
    assert v["status"] == "passed" and v["checks"] == 3
    assert len(moto_ext.issued_passwords()) == 2  # the live cluster, then the scratch one
    assert_password_nowhere(box, runs)


def test_credentials_helper_prints_the_password_to_a_terminal_only(box: Sandbox) -> None:
    runs = Runs(box)
    piped = runs("credentials", "--cluster", "prod-a")
    assert piped.returncode == 0, piped.stderr
    host, port = box.pg  # type: ignore[attr-defined]
    assert piped.stdout.strip() == (
        f"host={host} port={port} dbname=dev user=IAM:snapworker-verify sslmode=disable"
    )
    assert "password" not in piped.stdout
    refused = runs("credentials", "--cluster", "prod-a", "--show-password")
    assert refused.returncode == 2 and "terminal" in refused.stderr
    assert len(moto_ext.issued_passwords()) == 1  # refused before asking AWS
    assert_password_nowhere(box, runs)

    # on a terminal, the password is printed (and only there)
    main, child = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "snapworker", "credentials", "--cluster", "prod-a", *SHOW],
            env=box.env(),
            cwd=box.tmp,
            stdout=child,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        os.close(child)
        child = -1
        out = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(main)
        if child != -1:
            os.close(child)
    assert proc.returncode == 0, proc.stderr
    password = moto_ext.issued_passwords()[-1]
    assert f"password={password}" in out.decode()
    assert password not in proc.stderr


def test_a_drill_that_cannot_connect_errors_counts_and_deletes(box: Sandbox) -> None:
    """A connection error (here: nothing listens on the port) is a drill error: exit 1, an
    error log line, ERROR in status; the scratch cluster is deleted; not redone until the
    next fire time."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    host, port = box.pg  # type: ignore[attr-defined]
    box.pg = (host, closed_port)  # type: ignore[attr-defined]
    write(box)
    box.pg = (host, port)  # type: ignore[attr-defined]
    runs = Runs(box)
    seed_owned(box)
    failed = runs("run")
    assert failed.returncode == 1
    errors = [e for e in log_lines(failed.stderr) if e.get("level") == "error"]
    assert any(
        e["event"] == "verification failed" and "cannot connect" in e["reason"] for e in errors
    )
    assert set(clusters(box)) == {"prod-a"}
    (v,) = status_json(runs)["verifications"]
    assert v["status"] == "error" and "cannot connect" in v["error"] and v["scratch_deleted"]
    assert runs("run").returncode == 0  # counted for its fire time
    assert moto_ext.call_counts()["RestoreFromClusterSnapshot"] == 1
    assert_password_nowhere(box, runs)
