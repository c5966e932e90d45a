"""Stopping `run` (issue 18): SIGINT or SIGTERM sent to a real `snapworker run` subprocess
mid-way, against moto's server slowed down server-side (every mutation answered late).

What a user observes is checked: no new action starts after the signal (counted by the
server), every outcome and the total are printed with one line saying it was interrupted, the
exit code (130 / 143), the run's record in `status --format json`, and the next run
completing the rest with each automated snapshot copied once. A second signal exits at once,
and the run it cut short shows as `interrupted` (its process is gone), not `running`.

Every wait is on a condition (a server-side count, a line on stderr), never a fixed sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import pytest

from snapworker.sandbox import moto_ext
from snapworker.sandbox.moto_ext import FaultPlan
from tests.e2e_support import Sandbox
from tests.e2e_support import wait_for as _wait_for


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    """``e2e_support.wait_for``, polling every 50 ms (a stop is asked mid-copy)."""
    return _wait_for(what, check, timeout, every=0.05)


pytestmark = pytest.mark.e2e

CLUSTERS = [f"prod-{i:02d}" for i in range(1, 13)]
AUTOMATED_PER_CLUSTER = 3
PLANNED = len(CLUSTERS) * AUTOMATED_PER_CLUSTER  # 36 copies
CONCURRENCY = 4
MUTATIONS = ("CopyClusterSnapshot", "CreateTags")
STARTS = ("CreateClusterSnapshot", "CopyClusterSnapshot", "AuthorizeSnapshotAccess")
"""The first call of an action (a copy's CreateTags follows its copy: it is the same action)."""

CONFIG = f"""\
state_url: sqlite:///{{db}}
aws:
  region: us-east-1
  max_concurrency: {CONCURRENCY}
  max_calls_per_second: 100
retry:
  attempts: 4
  wait_initial_seconds: 0
  wait_max_seconds: 0
policies:
  - name: prod-nightly
    select:
      clusters: ["prod-*"]
      tags: {{{{env: prod}}}}
    copy_automated: true
    retention:
      max_age_days: 35
      keep_last: 3
"""


def seed(box: Sandbox) -> list[str]:
    box.write_config(CONFIG)
    sources = []
    for cid in CLUSTERS:
        box.cluster(cid, env="prod")
        sources += [box.automated(cid, age_days=d) for d in range(1, AUTOMATED_PER_CLUSTER + 1)]
    return sources


def slow_server(seconds: float) -> None:
    """Every mutation processed on arrival (and counted), answered ``seconds`` later."""
    moto_ext.set_fault_plan(FaultPlan(operations=frozenset(MUTATIONS), latency_seconds=seconds))


def started() -> int:
    counts = moto_ext.call_counts()
    return sum(counts.get(op, 0) for op in STARTS)


def copies_by_target() -> Counter[str]:
    """CopyClusterSnapshot requests by target id (a source's copy id is derived from the
    source: copying a source twice asks for the same target twice)."""
    return Counter(
        {
            target: n
            for op, target, n in moto_ext.fault_report()["requests"]
            if op == "CopyClusterSnapshot"
        }
    )


class Lines:
    """A pipe read line by line in a thread, so a test can wait for a line while the
    process runs."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.append(line.rstrip("\n"))

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def join(self) -> list[str]:
        self._thread.join(timeout=60)
        return self.lines


@contextmanager
def running(box: Sandbox) -> Iterator[tuple[subprocess.Popen[str], Lines, Lines]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapworker", "run"],
        env=box.env(),
        cwd=box.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        yield proc, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def last_run(box: Sandbox) -> dict[str, Any]:
    status = box.cli("status", "--format", "json")
    assert status.returncode == 0, status.stderr
    runs = json.loads(status.stdout)["runs"]
    return dict(runs[0])


def next_run_completes_the_rest(
    box: Sandbox, sources: list[str]
) -> subprocess.CompletedProcess[str]:
    moto_ext.set_fault_plan(None)  # full speed; the request counts are kept
    again = box.cli("run")
    assert again.returncode == 0, again.stdout + again.stderr
    copies = copies_by_target()
    assert len(copies) == PLANNED and set(copies.values()) == {1}, copies
    made = [s for s in box.snapshots().values() if s["tags"].get("snapworker:policy")]
    assert len(made) == PLANNED
    # Each source has its copy (snapworker:source names it), exactly one.
    by_source = Counter(s["tags"].get("snapworker:source") for s in made)
    assert sorted(by_source) == sorted(sources) and set(by_source.values()) == {1}, by_source
    return again


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_stops_run_after_the_actions_in_flight(
    sandbox: Sandbox, sig: signal.Signals, code: int
) -> None:
    sources = seed(sandbox)
    slow_server(1.0)
    with running(sandbox) as (proc, out, err):
        wait_for("8 copies started", lambda: started() >= 8 or proc.poll() is not None)
        assert proc.poll() is None, "run ended before the signal: " + "\n".join(err.lines)
        before = started()
        proc.send_signal(sig)
        assert proc.wait(timeout=120) == code
        after = started()
        stdout, stderr = out.join(), err.join()

    # No new action after the signal: only those in flight (one per worker) went on.
    assert after - before <= CONCURRENCY, (before, after)
    assert after < PLANNED, "the stop came too late to prove anything"
    # Every outcome, the total, and the interrupted line.
    assert stdout[0].startswith(f"plan: {PLANNED} action")
    done = [line for line in stdout if line.startswith("  ok      copy ")]
    assert len(done) == after, stdout
    assert f"{after} succeeded, 0 failed" in stdout
    assert (
        f"interrupted by {sig.name}: {PLANNED - after} planned action(s) not started; "
        "the next run completes the rest"
    ) in stdout
    assert any(f"{sig.name}: stopping: no new action starts" in line for line in stderr)
    # Recorded as interrupted, with its real counts; the in-flight actions were journalled.
    run = last_run(sandbox)
    assert (run["status"], run["actions_ok"], run["actions_failed"]) == ("interrupted", after, 0)
    assert run["finished_at"] is not None
    assert [e for e in sandbox.journal() if e["status"] == "pending"] == []

    again = next_run_completes_the_rest(sandbox, sources)
    assert f"{PLANNED - after} succeeded, 0 failed" in again.stdout
    assert last_run(sandbox)["status"] == "ok"


def test_a_second_signal_exits_at_once_and_the_next_run_completes_the_work(
    sandbox: Sandbox,
) -> None:
    sources = seed(sandbox)
    slow_server(10.0)  # the answers of the first copies come long after the second signal
    with running(sandbox) as (proc, _, err):
        wait_for(
            f"{CONCURRENCY} copies in flight",
            lambda: started() >= CONCURRENCY or proc.poll() is not None,
        )
        proc.send_signal(signal.SIGINT)
        wait_for("the first signal handled", lambda: err.has("stopping: no new action"))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        stderr = err.join()
    assert any("second signal: exiting now" in line for line in stderr)
    # It did not wait for the copies in flight: their journal entries are still pending.
    pending = [e for e in sandbox.journal() if e["status"] == "pending"]
    assert pending and all(e["kind"] == "copy" for e in pending)
    # Its run row is never finished, but its process is gone: shown as interrupted.
    run = last_run(sandbox)
    assert run["status"] == "interrupted", run
    assert "process" in (run["error"] or "")

    again = next_run_completes_the_rest(sandbox, sources)
    assert f"completed {len(pending)} action(s) interrupted by an earlier run" in again.stdout
    assert [e for e in sandbox.journal() if e["status"] == "pending"] == []
