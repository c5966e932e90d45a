"""The daemon in-process: trigger fire times against croniter, job wiring on a paused
scheduler, jobs called directly (no live-thread timing), graceful stop between actions,
SIGHUP reload, pruning, SQS message parsing and the poller (moto's SQS), health and metrics
scraped over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from croniter import croniter
from moto import mock_aws

from snapworker.adapters.aws.redshift import AwsError
from snapworker.adapters.aws.sqs import BadMessage, RedshiftEvent, SqsPoller, parse_message
from snapworker.adapters.http.health import HealthServer, Metrics
from snapworker.config import Config, load_config
from snapworker.entrypoints.daemon import (
    JOB_DEFAULTS,
    CronFireTrigger,
    Daemon,
    policies_for_cluster,
    stop_bound_seconds,
)
from snapworker.sandbox import moto_ext

REGION = "us-east-1"
ACCOUNT = "123456789012"

CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
retry:
  attempts: 2
  wait_initial_seconds: 0
  wait_max_seconds: 0
daemon:
  reconcile_interval_seconds: 120
  poll_creating_seconds: 5
  history_days: 1
policies:
  - name: prod-nightly
    select:
      clusters: ["prod-*"]
    copy_automated: true
    share:
      accounts: ["111122223333"]
    retention:
      max_age_days: 35
      keep_last: 3
  - name: weekly
    select:
      clusters: ["dw-*"]
    create:
      schedule: "0 5 * * 0"
      timezone: Europe/Berlin
"""


# --- the trigger ---


def croniter_times(expr: str, tz: str, start: datetime, n: int) -> list[datetime]:
    it = croniter(expr, start.astimezone(ZoneInfo(tz)))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(n)]


@pytest.mark.parametrize(
    ("expr", "tz"),
    [
        ("0 5 * * 0", "UTC"),
        ("30 2 * * *", "Europe/Berlin"),  # 02:30 does not exist on the spring DST day
        ("0 3 * * 1-5", "America/New_York"),
        ("*/20 * * * *", "Asia/Kolkata"),
        ("0 0 1 * *", "Australia/Sydney"),
    ],
)
def test_cron_trigger_fires_when_croniter_says(expr: str, tz: str) -> None:
    start = datetime(2026, 3, 20, 12, 7, tzinfo=UTC)  # spans the March DST changes
    trigger = CronFireTrigger(expr, tz)
    got: list[datetime] = []
    prev = None
    for _ in range(40):
        nxt = trigger.get_next_fire_time(prev, start)
        assert nxt is not None
        got.append(nxt.astimezone(UTC))
        prev = nxt
    assert got == croniter_times(expr, tz, start, 40)


def test_sunday_is_zero_as_in_cron_not_as_in_apscheduler_from_crontab() -> None:
    from apscheduler.triggers.cron import CronTrigger

    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
    ours = CronFireTrigger("0 5 * * 0", "UTC").get_next_fire_time(None, now)
    assert ours == datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    assert ours is not None and ours.strftime("%A") == "Sunday"
    theirs = CronTrigger.from_crontab("0 5 * * 0", timezone=UTC).get_next_fire_time(None, now)
    assert theirs is not None and theirs.strftime("%A") == "Monday"  # why we have our own


def test_a_fire_time_equal_to_now_counts() -> None:
    now = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    assert CronFireTrigger("0 5 * * 0", "UTC").get_next_fire_time(None, now) == now


# --- an in-process runtime on moto ---


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    for k in (
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "SNAPWORKER_FAKE_NOW",
        moto_ext.ENV_CREATING_POLLS,
    ):
        monkeypatch.delenv(k, raising=False)
    with mock_aws():
        moto_ext.install()
        moto_ext.set_creating_polls(0)
        moto_ext.reset_call_counts()
        client = boto3.client("redshift", region_name=REGION)
        yield client
    moto_ext.set_creating_polls(0)


def make_cluster(client: Any, cid: str) -> None:
    client.create_cluster(
        ClusterIdentifier=cid,
        NodeType="ra3.xlplus",
        MasterUsername="admin",
        MasterUserPassword="Passw0rd-demo",
    )
    be = moto_ext.backend(ACCOUNT, REGION)
    for sid in [s for s, snap in be.snapshots.items() if snap.cluster_identifier == cid]:
        moto_ext.drop_snapshot(be, sid)


def automated(cid: str, age_days: float) -> str:
    t = datetime.now(UTC) - timedelta(days=age_days)
    snap = moto_ext.add_automated_snapshot(moto_ext.backend(ACCOUNT, REGION), cid, create_time=t)
    return str(snap.snapshot_identifier)


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "snapworker.yaml"
    path.write_text(text.format(db=tmp_path / "state.db"))
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def daemon(aws: Any, tmp_path: Path, clock: FakeClock) -> Iterator[Daemon]:
    from snapworker.service.bootstrap import bootstrap

    path = write_config(tmp_path)

    def factory(cfg: Config, store: Any, sleep: Any) -> Any:
        return bootstrap(cfg, client=aws, store=store, sleep=sleep, clock=clock)

    d = Daemon(load_config(path), path, runtime_factory=factory)
    yield d
    if d.scheduler.running:
        d.scheduler.shutdown(wait=False)
    d.rt.store.close()


# --- job wiring ---


def test_jobs_on_a_paused_scheduler(daemon: Daemon) -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # Wednesday
    daemon.install_jobs(now=now)
    daemon.scheduler.start(paused=True)
    jobs = {j.id: j for j in daemon.scheduler.get_jobs()}
    assert set(jobs) == {"reconcile", "create:weekly", "prune"}  # prod-nightly has no schedule
    assert str(daemon.scheduler.timezone) == "UTC"
    # one reconcile at start-up, then every reconcile_interval_seconds
    assert jobs["reconcile"].next_run_time == now
    assert jobs["reconcile"].trigger.interval == timedelta(seconds=120)
    # the weekly create fires on Sunday 05:00 in Berlin (04:00 UTC in winter)
    assert jobs["create:weekly"].next_run_time == datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    assert jobs["create:weekly"].args == (["weekly"], "schedule")
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time == JOB_DEFAULTS["misfire_grace_time"] == 900


def test_a_verify_schedule_gets_a_job_that_ticks_its_policy(daemon: Daemon, tmp_path: Path) -> None:
    verified = CONFIG.replace(
        "      timezone: Europe/Berlin\n",
        "      timezone: Europe/Berlin\n"
        "    verify:\n"
        '      schedule: "30 6 * * 1"\n'
        "      timezone: America/New_York\n"
        "      connect:\n"
        "        db_user: verifier\n"
        "      checks:\n"
        "        - name: rows\n"
        "          sql: select 1\n"
        "          expect:\n"
        "            min: 1\n",
    )
    assert verified != CONFIG
    write_config(tmp_path, verified)
    assert daemon.reload() is True
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # Wednesday
    daemon.install_jobs(now=now)
    daemon.scheduler.start(paused=True)
    jobs = {j.id: j for j in daemon.scheduler.get_jobs()}
    assert set(jobs) == {"reconcile", "create:weekly", "verify:weekly", "prune"}
    # Monday 06:30 in New York is 11:30 UTC in winter
    assert jobs["verify:weekly"].next_run_time == datetime(2026, 11, 30, 11, 30, tzinfo=UTC)
    assert jobs["verify:weekly"].args == (["weekly"], "verify")
    # and a reload without the block removes the job
    write_config(tmp_path)
    assert daemon.reload() is True
    assert {j.id for j in daemon.scheduler.get_jobs()} == {"reconcile", "create:weekly", "prune"}


def test_reconcile_copies_then_a_creating_poll_shares(daemon: Daemon, aws: Any) -> None:
    make_cluster(aws, "prod-a")
    automated("prod-a", 1)
    automated("prod-a", 2)
    daemon.scheduler.start(paused=True)
    first = daemon.reconcile()
    assert first is not None
    assert sorted(o.outcome for o in first.outcomes) == ["copied", "copied"]
    poll = daemon.scheduler.get_job("poll-creating")
    assert poll is not None  # sharing must follow the copy: look again soon
    assert poll.next_run_time <= datetime.now(UTC) + timedelta(seconds=5)
    poll.remove()
    second = daemon.reconcile(reason="creating")
    assert second is not None
    assert sorted(o.outcome for o in second.outcomes) == ["shared", "shared"]
    third = daemon.reconcile()
    assert third is not None and third.outcomes == []
    assert daemon.scheduler.get_job("poll-creating") is None  # nothing left to watch
    assert moto_ext.call_counts()["CopyClusterSnapshot"] == 2


def test_a_snapshot_still_creating_is_looked_at_again(daemon: Daemon, aws: Any) -> None:
    make_cluster(aws, "prod-a")
    automated("prod-a", 1)
    moto_ext.set_creating_polls(3)
    daemon.scheduler.start(paused=True)
    daemon.reconcile()
    daemon.scheduler.remove_job("poll-creating")
    result = daemon.reconcile(reason="creating")  # the copy is still `creating`: no share
    assert result is not None and result.outcomes == []
    assert daemon.scheduler.get_job("poll-creating") is not None


def test_stop_lets_the_action_in_flight_finish_and_starts_no_other(
    daemon: Daemon, aws: Any
) -> None:
    make_cluster(aws, "prod-a")
    for d in (1, 2, 3):
        automated("prod-a", d)
    gateway = daemon.rt.gateway
    real_copy = gateway.copy_snapshot

    def copy_then_signal(*args: Any, **kw: Any) -> Any:
        out = real_copy(*args, **kw)
        daemon.request_stop()  # SIGTERM arrives while the first copy is in flight
        return out

    gateway.copy_snapshot = copy_then_signal  # type: ignore[method-assign]
    result = daemon.reconcile()
    assert result is not None
    assert [o.outcome for o in result.outcomes] == ["copied"]
    journal = daemon.rt.store.journal()
    assert [(e.kind, e.status) for e in journal] == [("copy", "completed")]
    assert moto_ext.call_counts()["CopyClusterSnapshot"] == 1
    assert daemon.reconcile() is None  # stopping: no new tick
    assert daemon.scheduler.get_job("poll-creating") is None


def test_a_tick_a_stop_cut_short_is_recorded_interrupted_with_its_counts(
    daemon: Daemon, aws: Any
) -> None:
    """Issue 18: a tick stopped before every planned action started is `interrupted` in the
    state DB (not `ok`), with the counts of the actions it did; the run lease is given back."""
    make_cluster(aws, "prod-a")
    for d in (1, 2, 3):
        automated("prod-a", d)
    gateway = daemon.rt.gateway
    real_copy = gateway.copy_snapshot

    def copy_then_signal(*args: Any, **kw: Any) -> Any:
        out = real_copy(*args, **kw)
        daemon.request_stop()
        return out

    gateway.copy_snapshot = copy_then_signal  # type: ignore[method-assign]
    result = daemon.reconcile()
    assert result is not None and result.interrupted
    assert len(result.results[0].plan.actions) == 3
    [run] = daemon.rt.store.recent_runs()
    assert (run.status, run.actions_ok, run.actions_failed) == ("interrupted", 1, 0)
    assert run.finished_at is not None
    assert daemon.rt.store.lease_holder(f"run:{run.id}") is None


def test_a_stop_cuts_a_retry_backoff_short(daemon: Daemon, aws: Any) -> None:
    from botocore.exceptions import ClientError

    make_cluster(aws, "prod-a")
    automated("prod-a", 1)
    attempts: list[str] = []

    def throttled(**kw: Any) -> Any:
        attempts.append(kw["TargetSnapshotIdentifier"])
        daemon.request_stop()  # SIGTERM while the call is being throttled
        raise ClientError(
            {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "CopyClusterSnapshot"
        )

    aws.copy_cluster_snapshot = throttled
    result = daemon.reconcile()
    assert result is not None
    assert [(o.outcome, "stopping" in (o.error or "")) for o in result.outcomes] == [
        ("failed", True)
    ]
    assert len(attempts) == 1  # no retry after the stop: the next tick does it again
    assert [(e.kind, e.status) for e in daemon.rt.store.journal()] == [("copy", "failed")]
    with pytest.raises(AwsError, match="stopping"):
        daemon._sleep(3600)


def test_stop_bound_is_one_call_with_botocore_attempts(daemon: Daemon) -> None:
    aws = daemon.config.aws
    per_call = aws.max_attempts * (aws.connect_timeout_seconds + aws.read_timeout_seconds)
    per_call += (aws.max_attempts - 1) * 20  # botocore's backoff between its attempts
    assert stop_bound_seconds(daemon.config) == 2 * per_call + 15


def test_stop_bound_with_the_default_settings(tmp_path: Path) -> None:
    text = "aws:\n  region: us-east-1\npolicies:\n  - name: p\n"
    cfg = load_config(write_config(tmp_path, text))
    assert stop_bound_seconds(cfg) == 515  # 2 x (3 x (10 + 60) + 2 x 20) + 15: the README's


# --- events ---


def test_events_reconcile_the_policies_selecting_the_cluster(daemon: Daemon, aws: Any) -> None:
    cfg = daemon.config
    assert policies_for_cluster(cfg, "prod-a") == ["prod-nightly"]
    assert policies_for_cluster(cfg, "dw-1") == ["weekly"]
    assert policies_for_cluster(cfg, None) == ["prod-nightly", "weekly"]
    assert policies_for_cluster(cfg, "other") == []
    daemon.scheduler.start(paused=True)
    daemon.on_event(RedshiftEvent("other"))
    assert [j for j in daemon.scheduler.get_jobs() if j.id.startswith("event-")] == []
    make_cluster(aws, "prod-a")
    automated("prod-a", 1)
    daemon.on_event(RedshiftEvent("prod-a"))
    daemon.on_event(RedshiftEvent("prod-a"))
    events = [j for j in daemon.scheduler.get_jobs() if j.id.startswith("event-")]
    assert len(events) == 2
    for job in events:  # the first runs the tick; the second finds nothing pending
        job.func()
    assert moto_ext.call_counts()["CopyClusterSnapshot"] == 1
    runs = daemon.rt.store.recent_runs()
    assert len(runs) == 1 and runs[0].mode == "daemon"


# --- reload and prune ---


def test_reload_keeps_the_running_config_when_the_new_one_is_bad(
    daemon: Daemon, tmp_path: Path
) -> None:
    daemon.install_jobs()
    daemon.scheduler.start(paused=True)
    before = daemon.config
    assert daemon.config_path is not None
    daemon.config_path.write_text("policies:\n  - name: bad name!\n")
    assert daemon.reload() is False
    assert daemon.config is before
    assert {j.id for j in daemon.scheduler.get_jobs()} == {"reconcile", "create:weekly", "prune"}

    good = CONFIG.replace('schedule: "0 5 * * 0"', 'schedule: "15 6 * * *"').replace(
        "name: weekly", "name: daily"
    )
    write_config(tmp_path, good)
    assert daemon.reload() is True
    jobs = {j.id: j for j in daemon.scheduler.get_jobs()}
    assert set(jobs) == {"reconcile", "create:daily", "prune"}
    assert [p.name for p in daemon.config.policies] == ["prod-nightly", "daily"]
    assert daemon.rt.config is daemon.config
    assert daemon.metrics.reloads == {"refused": 1, "ok": 1}


def test_prune_deletes_history_older_than_history_days(
    daemon: Daemon, aws: Any, clock: FakeClock
) -> None:
    make_cluster(aws, "prod-a")
    automated("prod-a", 1)
    daemon.reconcile()
    assert len(daemon.rt.store.recent_runs()) == 1
    assert len(daemon.rt.store.journal()) == 1
    assert daemon.prune() == 0  # younger than history_days
    clock.now += timedelta(days=2)
    assert daemon.prune() == 2  # the run and its journal entry
    assert daemon.rt.store.recent_runs() == []
    assert daemon.owned_counts() == {("prod-nightly", "", ""): 1}  # what it owns is never pruned


# --- SQS messages ---

EVENTBRIDGE = {
    "version": "0",
    "id": "5b0f4bd7-a2c5-4b1b-ae2b-6f0c4b5c0e77",
    "detail-type": "Redshift Cluster Notification",
    "source": "aws.redshift",
    "account": ACCOUNT,
    "time": "2026-11-27T03:00:00Z",
    "region": REGION,
    "resources": [f"arn:aws:redshift:{REGION}:{ACCOUNT}:cluster:prod-a"],
    "detail": {
        "EventID": "REDSHIFT-EVENT-2000",
        "SourceType": "cluster",
        "SourceIdentifier": "prod-a",
        "Severity": "INFO",
        "Category": "Management",
    },
}
REDSHIFT_NOTIFICATION = {
    "Event Source": "cluster",
    "Event Time": "2026-11-27 03:00:00.000",
    "Identifier Link": "https://console.aws.amazon.com/redshift/home#cluster-details:cluster=prod-b",
    "Source ID": "prod-b",
    "Severity": "INFO",
    "Category": "Backup",
    "About this Event": "https://docs.aws.amazon.com/redshift/latest/mgmt/#REDSHIFT-EVENT-2008",
    "Event Message": "Amazon Redshift finished taking an automated snapshot of prod-b.",
}


def sns(message: Any) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "e3c1",
            "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:redshift-events",
            "Message": message if isinstance(message, str) else json.dumps(message),
        }
    )


def test_parse_eventbridge_sns_and_raw_redshift_events() -> None:
    assert parse_message(json.dumps(EVENTBRIDGE)).cluster == "prod-a"
    assert parse_message(json.dumps(EVENTBRIDGE)).source == "eventbridge"
    assert parse_message(sns(EVENTBRIDGE)).cluster == "prod-a"
    wrapped = parse_message(sns(REDSHIFT_NOTIFICATION))
    assert (wrapped.cluster, wrapped.source) == ("prod-b", "sns")
    assert parse_message(json.dumps(REDSHIFT_NOTIFICATION)).cluster == "prod-b"  # raw delivery
    snapshot_event = dict(
        EVENTBRIDGE,
        **{
            "detail-type": "Redshift Cluster Snapshot Notification",
            "resources": [f"arn:aws:redshift:{REGION}:{ACCOUNT}:snapshot:prod-c/sw-x-1"],
            "detail": {"SourceType": "cluster-snapshot", "SourceIdentifier": "sw-x-1"},
        },
    )
    ev = parse_message(json.dumps(snapshot_event))
    assert (ev.cluster, ev.snapshot) == ("prod-c", "sw-x-1")
    # a snapshot event naming only the snapshot: every policy is reconciled
    bare = dict(snapshot_event, resources=[])
    ev = parse_message(json.dumps(bare))
    assert (ev.cluster, ev.snapshot) == (None, "sw-x-1")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not json {", "not JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"source": "aws.ec2", "detail": {}}), "not aws.redshift"),
        (json.dumps({"source": "aws.redshift", "detail": "x"}), "detail object"),
        (json.dumps({"source": "aws.redshift", "detail": {"Severity": "INFO"}}), "identifier"),
        (json.dumps({"Type": "SubscriptionConfirmation", "Message": "{}"}), "not a notification"),
        (sns("plain text"), "not JSON"),
        (json.dumps({"hello": "world"}), "neither"),
        ("x" * 300_000, "too large"),
    ],
)
def test_bad_messages_say_why(body: str, why: str) -> None:
    with pytest.raises(BadMessage, match=why):
        parse_message(body)


class ListLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, event: str, **kw: Any) -> None:
        self.lines.append((level, event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._add("error", event, **kw)


@pytest.mark.parametrize("delete_bad", [True, False])
def test_sqs_poller_on_moto(monkeypatch: pytest.MonkeyPatch, delete_bad: bool) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="events")["QueueUrl"]
        for body in (json.dumps(EVENTBRIDGE), "garbage", sns(REDSHIFT_NOTIFICATION)):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        seen: list[RedshiftEvent] = []
        outcomes: list[str] = []
        log = ListLog()
        poller = SqsPoller(
            sqs,
            url,
            seen.append,
            log,
            delete_bad=delete_bad,
            wait_seconds=0,
            on_message=outcomes.append,
        )
        handled = 0
        while handled < 3:
            n = poller.poll_once()
            assert n, "messages went missing"
            handled += n
        assert sorted(e.cluster or "" for e in seen) == ["prod-a", "prod-b"]
        assert sorted(outcomes) == ["bad", "ok", "ok"]
        assert any(level == "warning" and ev == "bad queue message" for level, ev, _ in log.lines)
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        left = int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )
        assert left == (0 if delete_bad else 1)  # left for the queue's redrive policy


def test_sqs_poller_keeps_a_message_whose_handling_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="events")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(EVENTBRIDGE))

        def boom(_: RedshiftEvent) -> None:
            raise RuntimeError("scheduler gone")

        poller = SqsPoller(sqs, url, boom, ListLog(), wait_seconds=0)
        assert poller.poll_once() == 1
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"  # comes back later


# --- health and metrics ---


def scrape(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_health_and_metrics_endpoint() -> None:
    from snapworker.adapters.aws.redshift import CallStats
    from snapworker.core.model import Action
    from snapworker.service.executor import Outcome

    t = [1000.0]
    metrics = Metrics(clock=lambda: t[0])
    stats = CallStats()
    stats.count(stats.calls, "DescribeClusterSnapshots")
    stats.count(stats.calls, "CopyClusterSnapshot")
    stats.count(stats.retries, "CopyClusterSnapshot")
    metrics.use_stats(stats)
    server = HealthServer(
        "127.0.0.1", 0, metrics, stale_after=lambda: 300.0, owned=lambda: {'p"1': 3}
    )
    server.start()
    try:
        port = server.address[1]
        status, _, body = scrape(port, "/healthz")
        assert status == 503 and json.loads(body)["last_success_age_seconds"] is None
        copy = Action("p1", "c1", "copy", "sw-1", "new automated snapshot", source="rs:c1-x")
        metrics.tick_done(
            1.5,
            [Outcome(copy, True, "copied"), Outcome(copy, False, "failed", "AccessDenied")],
            True,
            ["p2"],
        )
        t[0] += 10
        status, _, body = scrape(port, "/healthz")
        assert status == 200 and json.loads(body)["last_success_age_seconds"] == 10
        t[0] += 400  # older than three reconcile intervals: the loop is stuck
        assert scrape(port, "/healthz")[0] == 503

        metrics.use_stats(CallStats())  # a reload: counts of the old gateway are kept
        status, ctype, text = scrape(port, "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        lines = text.splitlines()
        assert 'snapworker_actions_total{kind="copy",outcome="copied"} 1.0' in lines
        assert 'snapworker_actions_total{kind="copy",outcome="failed"} 1.0' in lines
        assert 'snapworker_aws_calls_total{operation="CopyClusterSnapshot"} 1.0' in lines
        assert 'snapworker_aws_retries_total{operation="CopyClusterSnapshot"} 1.0' in lines
        # a policy alone (no fleet): its target and region labels are empty
        assert 'snapworker_policy_skipped_total{policy="p2",region="",target=""} 1.0' in lines
        assert 'snapworker_snapshots_owned{policy="p\\"1",region="",target=""} 3.0' in lines
        assert "snapworker_tick_duration_seconds_count 1.0" in lines
        assert "snapworker_tick_duration_seconds_sum 1.5" in lines
        assert "snapworker_last_success_timestamp_seconds 1000.0" in lines
        assert "# TYPE snapworker_actions_total counter" in lines
        for line in lines:  # every sample line parses as `name{labels} value`
            if not line.startswith("#"):
                float(line.rsplit(" ", 1)[1])
        assert scrape(port, "/other")[0] == 404
    finally:
        server.stop()


def test_each_daemon_has_its_own_registry_with_a_histogram_and_process_metrics() -> None:
    one, two = Metrics(), Metrics()
    one.tick_done(3.0, [], True, [])
    text = one.render()
    assert 'snapworker_tick_duration_seconds_bucket{le="5.0"} 1.0' in text.splitlines()
    assert 'snapworker_tick_duration_seconds_bucket{le="2.5"} 0.0' in text.splitlines()
    assert "# TYPE snapworker_tick_duration_seconds histogram" in text
    assert "process_resident_memory_bytes" in text and "python_info{" in text
    assert 'snapworker_ticks_total{result="ok"} 1.0' in text
    assert "snapworker_ticks_total{" not in two.render()  # its own counts, not the other's
    assert "_created" not in text


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_daemon_serves_the_report_of_its_last_tick(
    aws: Any, tmp_path: Path, clock: FakeClock
) -> None:
    from snapworker.service.bootstrap import bootstrap

    make_cluster(aws, "prod-a")
    automated("prod-a", 1)
    automated("prod-a", 2)
    port = free_port()
    path = write_config(
        tmp_path,
        CONFIG.replace(
            "  history_days: 1\n",
            f"  history_days: 1\n  http:\n    host: 127.0.0.1\n    port: {port}\n",
        ),
    )

    def factory(cfg: Config, store: Any, sleep: Any) -> Any:
        return bootstrap(cfg, client=aws, store=store, sleep=sleep, clock=clock)

    d = Daemon(load_config(path), path, runtime_factory=factory)
    d.reconcile()  # copies the two automated snapshots
    d.reconcile()  # shares them
    assert d.last_result is not None
    copies = sorted(k.snapshot for k in d.last_result.results[0].plan.kept)
    assert len(copies) == 2
    d.start()
    try:
        status, ctype, page = scrape(port, "/")
        assert status == 200 and ctype.startswith("text/html")
        assert page.startswith("<!DOCTYPE html>") and "The daemon&#x27;s last tick" in page
        for sid in copies:
            assert page.count(f'data-snapshot="{sid}"') == 1
        assert "<script" not in page and "http://" not in page and "https://" not in page
        assert "testing" not in page  # no credential (the fixture's keys are "testing")
        assert scrape(port, "/healthz")[0] in (200, 503)
        assert "snapworker_ticks_total" in scrape(port, "/metrics")[2]
    finally:
        d.shutdown()


# --- deployment examples ---

EXAMPLES = Path(__file__).resolve().parent.parent / "config"


@pytest.mark.parametrize("manifest", ["k8s-cronjob.yaml", "k8s-deployment.yaml"])
def test_kubernetes_examples_carry_a_valid_config_and_grace_above_the_stop_bound(
    manifest: str, tmp_path: Path
) -> None:
    import yaml

    docs = list(yaml.safe_load_all((EXAMPLES / manifest).read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = load_config(write_config(tmp_path, config_map["data"]["snapworker.yaml"]))
    workload = next(d for d in docs if d["kind"] in ("CronJob", "Deployment"))
    spec = workload["spec"]
    pod = (spec["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else spec)["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] >= stop_bound_seconds(cfg)
    args = pod["spec"]["containers"][0]["args"]
    assert args == (["run"] if workload["kind"] == "CronJob" else ["daemon"])


def test_systemd_unit_waits_longer_than_the_stop_bound(tmp_path: Path) -> None:
    unit = (EXAMPLES / "snapworker.service").read_text()
    timeout = int(unit.split("TimeoutStopSec=")[1].split()[0])
    text = "aws:\n  region: us-east-1\ndaemon:\n  sqs_queue_url: https://sqs.example/q\n"
    cfg = load_config(write_config(tmp_path, text + "policies:\n  - name: p\n"))
    assert timeout >= stop_bound_seconds(cfg)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
