"""Faults everywhere: the crash scenario of ``tests/test_crash.py`` (create, copy + tag,
share, revoke, delete on one cluster) run under faults injected into a seeded share of the
AWS calls must end in exactly the state of the uninterrupted reference run.

Faults are injected server-side by the moto extension (``moto_ext.FaultPlan``, see its
module docstring): throttling (400 ``Throttling``), 500, 503, connection resets, read
timeouts (the call is processed, the answer comes after the client's read timeout), the
busy faults of create/copy, a cluster that stays ``modifying`` for a whole run, snapshots
that stay ``creating`` for several ticks.

Which retry layer each test exercises, and how none of them sleeps for real:

- the subprocess runs (``snapworker run``) use ``aws.max_attempts: 1``, so botocore makes one
  attempt per call and every retry is tenacity's, whose waits are 0 in the config; the
  read timeout is 1 s (``aws.read_timeout_seconds``) against a 1.5 s stall, and at most one
  or two stalls per test;
- the in-process run drives the engine with botocore's ``standard`` retries on
  (``max_attempts: 3``) *and* tenacity: botocore's backoff sleep (``time.sleep`` inside
  ``botocore.endpoint``) is replaced by a recorder, and the gateway's sleep is injected.

Retries are bounded: for every action of every run the HTTP calls the server saw for it are
counted (``moto_ext.fault_report``) and must not exceed ``aws.max_attempts * retry.attempts``;
the figures (faults injected by kind, worst case of calls per action) are printed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from snapworker.sandbox import moto_ext
from tests.e2e_support import REGION, Sandbox
from tests.test_crash import ACC, ALIAS, SCENARIO_CONFIG, end_state, reference, seed

__all__ = ["reference"]  # the fixture, shared with the crash harness

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 1  # botocore, in the subprocess runs
ATTEMPTS = 4  # tenacity (retry.attempts of the scenario's config)
BOUND = MAX_ATTEMPTS * ATTEMPTS
TRANSIENT = ("throttling", "internal", "unavailable", "reset", "busy")

FAULT_CONFIG = SCENARIO_CONFIG.replace(
    "aws:\n  region: us-east-1\n",
    "aws:\n  region: us-east-1\n  max_attempts: 1\n"
    "  read_timeout_seconds: 1\n  connect_timeout_seconds: 1\n"
    # the client-side rate limiter halves its rate on each throttle and waits for real;
    # start it high so that the injected throttles cost little wall time
    "  max_calls_per_second: 100\n",
)
assert "read_timeout_seconds" in FAULT_CONFIG and f"attempts: {ATTEMPTS}" in FAULT_CONFIG


class Figures:
    """What the fault runs did, accumulated over a test: printed at its end."""

    def __init__(self) -> None:
        self.injected: Counter[str] = Counter()
        self.worst: tuple[int, str] = (0, "")
        self.runs = 0
        self.failed_runs = 0

    def add(self, report: dict[str, Any]) -> None:
        self.injected.update(report["injected"])
        for op, target, n in report["requests"]:
            if n > self.worst[0]:
                self.worst = (n, f"{op} {target}")

    def show(self, label: str, bound: int) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.injected.items())) or "none"
        line = (
            f"[faults] {label}: {sum(self.injected.values())} faults injected ({kinds}); "
            f"{self.runs} runs ({self.failed_runs} exited 1); worst case {self.worst[0]} HTTP "
            f"calls for one action ({self.worst[1]}) against the bound max_attempts x "
            f"attempts = {bound}"
        )
        print(line)
        return line


def _seeded(box: Sandbox) -> None:
    seed(box)
    box.write_config(FAULT_CONFIG)


def converge_under_faults(
    box: Sandbox, plan: moto_ext.FaultPlan | None, figures: Figures, limit: int = 8
) -> list[Any]:
    """Run until a run has nothing to do; returns the runs. Each run's HTTP calls per action
    are checked against the bound. A run may exit 1 only for a transient failure (a fault
    that outlasted the retries): the next run must then finish the work."""
    moto_ext.set_fault_plan(plan)
    moto_ext.fault_report(reset=True)
    runs = []
    try:
        for _ in range(limit):
            was_creating = creating(box)
            r = box.cli("run")
            report = moto_ext.fault_report(reset=True)
            figures.add(report)
            figures.runs += 1
            runs.append(r)
            out = r.stdout + r.stderr
            assert "Traceback" not in out, out
            for op, target, n in report["requests"]:
                assert n <= BOUND, f"{op} {target}: {n} HTTP calls > {BOUND}\n{out}"
            if r.returncode == 1:
                figures.failed_runs += 1
                failed = [line for line in r.stdout.splitlines() if "FAILED" in line] + [
                    line for line in r.stderr.splitlines() if "could not read the inventory" in line
                ]
                assert failed, out
                for line in failed:
                    assert any(
                        code in line
                        for code in (
                            "Throttling",
                            "InternalFailure",
                            "ServiceUnavailable",
                            "ConnectionError",
                            "ReadTimeout",
                            "InvalidClusterState",
                            "InvalidClusterSnapshotState",
                            "is 'creating', not available",
                            "a revoke of this snapshot failed",
                        )
                    ), line
                continue
            assert r.returncode == 0, out
            if r.stdout.strip().splitlines()[-1] == "0 succeeded, 0 failed" and not was_creating:
                return runs
    finally:
        moto_ext.set_fault_plan(None)
    raise AssertionError(f"did not converge in {limit} runs")


def creating(box: Sandbox) -> list[str]:
    """Snapshots still ``creating`` (read from the backend: a describe would count as a poll).
    A run with nothing to do is not the end while one is: sharing waits for it."""
    return [sid for sid, s in box.backend().snapshots.items() if s.status == "creating"]


def check_journal(box: Sandbox) -> None:
    """Every action completed once; the delete only after both revokes of its snapshot."""
    journal = box.journal()
    completed = Counter(j["key"] for j in journal if j["status"] == "completed")
    assert all(n == 1 for n in completed.values()), completed
    assert not [j for j in journal if j["status"] == "pending"]
    deletes = [j for j in journal if j["kind"] == "delete" and j["status"] == "completed"]
    assert len(deletes) == 1
    revokes = [
        j
        for j in journal
        if j["snapshot_id"] == deletes[0]["snapshot_id"]
        and j["kind"] == "revoke"
        and j["status"] == "completed"
    ]
    assert {j["account"] for j in revokes} == {ACC, ALIAS}
    assert all(j["finished_at"] <= deletes[0]["started_at"] for j in revokes)


# ----------------------------------------------------------------- targeted, one fault kind


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kinds", "operations"),
    [
        (("throttling",), ()),
        (("internal",), ()),
        (("unavailable",), ()),
        (("reset",), ()),
        (("busy",), ("CreateClusterSnapshot", "CopyClusterSnapshot")),
    ],
    ids=["throttling", "500", "503", "reset", "busy"],
)
def test_every_call_faulted_up_to_the_retry_budget(
    sandbox: Sandbox,
    reference: dict[str, tuple],
    kinds: tuple[str, ...],
    operations: tuple,
    record_property: Any,
) -> None:
    """Each call fails ATTEMPTS-1 times in a row before it goes through: the worst case the
    retries must absorb inside one run, for every call of the scenario."""
    figures = Figures()
    _seeded(sandbox)
    plan = moto_ext.FaultPlan(
        seed=1,
        rate=1.0,
        kinds=kinds,
        operations=frozenset(operations),
        max_consecutive=ATTEMPTS - 1,
    )
    runs = converge_under_faults(sandbox, plan, figures)
    assert all(r.returncode == 0 for r in runs)
    assert end_state(sandbox) == reference
    check_journal(sandbox)
    assert figures.worst[0] == BOUND  # the budget was used to the last call, and no more
    assert sum(figures.injected.values()) > 0
    record_property("figure", figures.show("+".join(kinds), BOUND))


def test_lost_answers_read_timeouts_on_mutations(
    sandbox: Sandbox, reference: dict[str, tuple], record_property: Any
) -> None:
    """The call is processed but its answer comes after the read timeout: the retry finds
    the work done (already exists / already authorized) and must treat it as done."""
    figures = Figures()
    _seeded(sandbox)
    plan = moto_ext.FaultPlan(
        rate=1.0,
        kinds=("timeout",),
        operations=frozenset({"CopyClusterSnapshot", "AuthorizeSnapshotAccess"}),
        max_consecutive=1,
        max_timeouts=2,
        stall_seconds=1.5,
    )
    converge_under_faults(sandbox, plan, figures)
    assert figures.injected["timeout"] == 2
    assert end_state(sandbox) == reference
    check_journal(sandbox)
    record_property("figure", figures.show("read timeouts on copy", BOUND))


@pytest.mark.slow
def test_snapshots_creating_for_several_ticks(
    sandbox: Sandbox, reference: dict[str, tuple]
) -> None:
    figures = Figures()
    _seeded(sandbox)
    moto_ext.set_creating_polls(3)
    runs = converge_under_faults(sandbox, None, figures)
    assert len(runs) >= 4  # sharing waited three ticks for the snapshots to become available
    assert end_state(sandbox) == reference
    check_journal(sandbox)


@pytest.mark.slow
def test_cluster_busy_for_a_whole_run(sandbox: Sandbox, reference: dict[str, tuple]) -> None:
    """A cluster seen ``modifying`` is not snapshotted (a warning, exit 0, no create call);
    one that turns busy after it was observed answers InvalidClusterState to every attempt
    of the run: the create fails after the retries (reported, exit 1), the rest of the work
    goes on, and a later run takes the snapshot."""
    figures = Figures()
    _seeded(sandbox)
    moto_ext.set_cluster_status(sandbox.backend(), "prod-a", "modifying")
    first = sandbox.cli("run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "'modifying'" in first.stderr and "warning: prod-nightly" in first.stderr
    assert "CreateClusterSnapshot" not in moto_ext.call_counts()
    moto_ext.set_cluster_status(sandbox.backend(), "prod-a", "available")

    busy = moto_ext.FaultPlan(
        rate=1.0, kinds=("busy",), operations=frozenset({"CreateClusterSnapshot"})
    )
    moto_ext.set_fault_plan(busy)
    moto_ext.fault_report(reset=True)
    second = sandbox.cli("run")
    report = moto_ext.fault_report(reset=True)
    moto_ext.set_fault_plan(None)
    assert second.returncode == 1, second.stdout + second.stderr
    failed = [line for line in second.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "create" in failed[0] and "InvalidClusterState" in failed[0]
    creates = [n for op, _, n in report["requests"] if op == "CreateClusterSnapshot"]
    assert creates == [BOUND]  # retried to the budget, and no further
    converge_under_faults(sandbox, None, figures)
    assert end_state(sandbox) == reference


# ------------------------------------------------------------------- seeded random sweeps


def _sweep(sandbox: Sandbox, reference: dict[str, tuple], seed_: int, rate: float) -> Figures:
    figures = Figures()
    _seeded(sandbox)
    plan = moto_ext.FaultPlan(
        seed=seed_,
        rate=rate,
        kinds=(*TRANSIENT, "timeout"),
        max_timeouts=1,
        stall_seconds=1.5,
    )
    converge_under_faults(sandbox, plan, figures, limit=10)
    assert end_state(sandbox) == reference
    check_journal(sandbox)
    return figures


def test_seeded_faults_on_a_share_of_all_calls(
    sandbox: Sandbox, reference: dict[str, tuple], record_property: Any
) -> None:
    figures = _sweep(sandbox, reference, seed_=20261128, rate=0.3)
    assert sum(figures.injected.values()) >= 5
    record_property("figure", figures.show("seed 20261128, 30% of calls", BOUND))


SWEEP = [(s, r) for s in (1, 2, 3, 4) for r in (0.2, 0.5)]


@pytest.mark.slow
@pytest.mark.parametrize(("seed_", "rate"), SWEEP, ids=[f"seed{s}-{r:.0%}" for s, r in SWEEP])
def test_fault_sweep(
    sandbox: Sandbox, reference: dict[str, tuple], seed_: int, rate: float, record_property: Any
) -> None:
    creating = seed_ % 3  # some seeds also keep new snapshots creating for 1-2 ticks
    moto_ext.set_creating_polls(creating)
    figures = _sweep(sandbox, reference, seed_, rate)
    record_property(
        "figure",
        figures.show(f"seed {seed_}, {rate:.0%} of calls, creating {creating} ticks", BOUND),
    )


# ------------------------------------------------- in process: botocore's own retry layer


class _RecordedSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def botocore_sleep(monkeypatch: pytest.MonkeyPatch) -> Iterator[_RecordedSleep]:
    """botocore's standard-mode backoff sleeps with ``time.sleep`` inside
    ``botocore.endpoint``; give that module a ``time`` whose sleep only records."""
    import botocore.endpoint

    recorder = _RecordedSleep()
    fake_time = SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    fake_time.sleep = recorder
    monkeypatch.setattr(botocore.endpoint, "time", fake_time)
    yield recorder


def test_in_process_botocore_and_tenacity_layers(
    sandbox: Sandbox,
    reference: dict[str, tuple],
    botocore_sleep: _RecordedSleep,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Any,
) -> None:
    from snapworker.config import load_config
    from snapworker.service.bootstrap import bootstrap
    from snapworker.service.tick import tick

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "SNAPWORKER_FAKE_NOW"):
        monkeypatch.delenv(k, raising=False)
    _seeded(sandbox)
    max_attempts, attempts = 3, 3
    sandbox.config.write_text(
        SCENARIO_CONFIG.format(db=sandbox.db)
        .replace(
            "aws:\n  region: us-east-1\n",
            f"aws:\n  region: {REGION}\n  endpoint_url: {sandbox.url}\n"
            f"  max_attempts: {max_attempts}\n  max_calls_per_second: 100\n",
        )
        .replace("attempts: 4", f"attempts: {attempts}")
    )
    cfg = load_config(sandbox.config)
    tenacity_sleep = _RecordedSleep()
    rt = bootstrap(cfg, sleep=tenacity_sleep)
    plan = moto_ext.FaultPlan(
        seed=7, rate=0.4, kinds=TRANSIENT, max_consecutive=max_attempts * attempts - 1
    )
    moto_ext.set_fault_plan(plan)
    moto_ext.fault_report(reset=True)
    figures = Figures()
    try:
        for _ in range(8):
            result = tick(rt)
            report = moto_ext.fault_report(reset=True)
            figures.add(report)
            figures.runs += 1
            assert not result.failures, result.failures
            if not result.outcomes:
                break
    finally:
        moto_ext.set_fault_plan(None)
        rt.store.close()
    assert end_state(sandbox) == reference
    assert figures.worst[0] <= max_attempts * attempts
    # botocore retried (and "slept", recorded only) for the throttles and 5xx it absorbed
    assert botocore_sleep.calls, "botocore's retry layer never ran"
    attempts_by_op = rt.gateway.stats.attempts
    calls_by_op = rt.gateway.stats.calls
    assert sum(attempts_by_op.values()) > sum(calls_by_op.values())
    shown = figures.show(
        f"in-process, botocore max_attempts {max_attempts} x tenacity attempts {attempts}; "
        f"botocore backoff sleeps {len(botocore_sleep.calls)} (recorded, not slept), "
        f"tenacity sleeps {len(tenacity_sleep.calls)}",
        max_attempts * attempts,
    )
    record_property("figure", shown)


# ------------------------------------------------------------- the fault plan over HTTP


def test_fault_plan_through_the_admin_endpoint(sandbox: Sandbox) -> None:
    """``POST /_snapworker/faults`` arms a plan (the server may run in another process),
    ``GET`` reports what it did, ``DELETE`` disarms it; a bad plan is a 400."""
    import json
    import urllib.error
    import urllib.request

    def call(method: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(sandbox.url + "/_snapworker/faults", data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    status, body = call(
        "POST",
        {"seed": 3, "rate": 1.0, "kinds": ["throttling"], "operations": ["DescribeClusters"]},
    )
    assert status == 200 and body["plan"]["kinds"] == ["throttling"]
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client(
        "redshift",
        region_name=REGION,
        endpoint_url=sandbox.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as info:
        client.describe_clusters()  # one attempt: no botocore backoff
    assert info.value.response["Error"]["Code"] == "Throttling"
    client.describe_cluster_snapshots()  # another operation: not faulted
    status, report = call("GET")
    assert status == 200 and report["injected"] == {"throttling": 1}
    assert any(op == "DescribeClusterSnapshots" and n == 1 for op, _, n in report["requests"])
    assert call("POST", {"kinds": ["gremlins"]})[0] == 400
    assert call("POST", {"rate": 2})[0] == 400
    assert call("DELETE")[0] == 200
    assert call("GET")[1] == {
        "plan": None,
        "injected": {},
        "requests": [],
        "requests_by_pair": [],
        "refused_assume_role": {},
    }
    client.describe_clusters()  # disarmed
