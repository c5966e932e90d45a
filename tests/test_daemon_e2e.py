"""`snapworker daemon` as a real subprocess against moto's server (Redshift and SQS on the
same endpoint) and a real SQLite file: it copies and shares within its first ticks, answers
/healthz and /metrics, reacts to an SQS message before its next interval tick, survives a
malformed one, never double-acts beside a concurrent `run`, and stops on SIGTERM with exit
0 and a complete journal."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from snapworker.sandbox import moto_ext
from tests.e2e_support import CONFIG, REGION, Sandbox, wait_for

pytestmark = pytest.mark.e2e

ACCOUNTS = ["111122223333", "amazon-redshift-support"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_config(box: Sandbox, *, interval: int = 3600, queue: str | None = None) -> int:
    port = free_port()
    extra = (
        "daemon:\n"
        f"  reconcile_interval_seconds: {interval}\n"
        "  poll_creating_seconds: 1\n"
        "  http:\n"
        "    host: 127.0.0.1\n"
        f"    port: {port}\n"
    )
    if queue:
        extra += f"  sqs_queue_url: {queue}\n"
    box.write_config(CONFIG.replace("policies:\n", extra + "policies:\n", 1))
    return port


@contextmanager
def running_daemon(box: Sandbox) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapworker", "daemon"],
        env=box.env(),
        cwd=box.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def finished_runs(box: Sandbox) -> int:
    if not box.db.exists():
        return 0
    con = sqlite3.connect(box.db)
    try:
        return int(
            con.execute("select count(*) from run where finished_at is not null").fetchone()[0]
        )
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def shared_copies(box: Sandbox, n: int) -> bool:
    made = [s for s in box.snapshots().values() if "snapworker:policy" in s["tags"]]
    return len(made) == n and all(s["accounts"] == sorted(ACCOUNTS) for s in made)


def no_double_action(box: Sandbox) -> None:
    done = Counter(
        (e["kind"], e["snapshot_id"], e["account"])
        for e in box.journal()
        if e["status"] == "completed"
    )
    assert done and max(done.values()) == 1, done
    assert [e for e in box.journal() if e["status"] == "pending"] == []


def test_daemon_copies_shares_serves_health_and_stops_on_sigterm(sandbox: Sandbox) -> None:
    box = sandbox
    box.cluster("prod-a", env="prod")
    box.automated("prod-a", 1)
    box.automated("prod-a", 2)
    moto_ext.set_creating_polls(1)  # copies start `creating`: sharing waits for `available`
    port = daemon_config(box)
    with running_daemon(box) as proc:
        # interval 3600 s: only the start-up tick and the creating polls can do this
        wait_for("copies shared", lambda: shared_copies(box, 2))
        _, body = wait_for("healthz 200", lambda: (s := get(port, "/healthz"))[0] == 200 and s)
        assert json.loads(body)["status"] == "ok"
        # AWS has the grants as soon as the calls return; the tick counts them when it ends.
        shares = 'snapworker_actions_total{kind="share",outcome="shared"} 4'
        _, metrics = wait_for(
            "shares counted", lambda: (m := get(port, "/metrics"))[1].count(shares) and m
        )
        assert 'snapworker_actions_total{kind="copy",outcome="copied"} 2' in metrics
        assert shares in metrics
        assert 'snapworker_aws_calls_total{operation="CopyClusterSnapshot"} 2' in metrics
        assert (
            'snapworker_snapshots_owned{policy="prod-nightly",region="us-east-1",'
            'target="default"} 2' in metrics
        )
        assert "snapworker_last_success_timestamp_seconds" in metrics
        code, err = stop(proc)
    assert code == 0, err
    assert "daemon stopped" in err
    no_double_action(box)
    assert moto_ext.call_counts()["CopyClusterSnapshot"] == 2
    assert moto_ext.call_counts()["AuthorizeSnapshotAccess"] == 4


def test_sqs_message_triggers_a_reconcile_and_a_bad_one_does_not_stop_it(sandbox: Sandbox) -> None:
    box = sandbox
    sqs = boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=box.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue = sqs.create_queue(QueueName="snapworker-events")["QueueUrl"]
    box.cluster("prod-a", env="prod")
    port = daemon_config(box, queue=queue)
    with running_daemon(box) as proc:
        wait_for("the start-up tick", lambda: finished_runs(box) >= 1)
        runs_before = finished_runs(box)
        sqs.send_message(QueueUrl=queue, MessageBody="this is not an event {")
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"source": "aws.ec2"}))
        # a new automated snapshot, announced by EventBridge through the queue
        box.automated("prod-a", 0.5)
        event = {
            "version": "0",
            "source": "aws.redshift",
            "detail-type": "Redshift Cluster Snapshot Notification",
            "account": "123456789012",
            "region": REGION,
            "time": datetime.now(UTC).isoformat(),
            "resources": [f"arn:aws:redshift:{REGION}:123456789012:cluster:prod-a"],
            "detail": {
                "EventID": "REDSHIFT-EVENT-2008",
                "SourceType": "CLUSTER",
                "SourceIdentifier": "prod-a",
                "Message": "An automated snapshot of cluster prod-a was taken",
            },
        }
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))
        # the interval is an hour: the copy can only come from the event
        wait_for("copy shared after the event", lambda: shared_copies(box, 1))
        assert finished_runs(box) > runs_before
        attrs = wait_for(
            "the queue drained",
            lambda: (
                (
                    a := sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])[
                        "Attributes"
                    ]
                )["ApproximateNumberOfMessages"]
                == "0"
                and a["ApproximateNumberOfMessagesNotVisible"] == "0"
                and a
            ),
        )
        assert attrs
        assert proc.poll() is None  # the bad messages did not stop it
        _, metrics = get(port, "/metrics")
        assert 'snapworker_queue_messages_total{outcome="bad"} 2' in metrics
        assert 'snapworker_queue_messages_total{outcome="ok"} 1' in metrics

        # SIGHUP with a broken config: refused, the running one kept; then a good one
        good = box.config.read_text()
        box.config.write_text(good.replace("keep_last: 3", "keep_last: many"))
        proc.send_signal(signal.SIGHUP)
        refused = 'snapworker_config_reloads_total{result="refused"} 1'
        wait_for("the reload refused", lambda: refused in get(port, "/metrics")[1])
        assert proc.poll() is None
        runs_before = finished_runs(box)
        box.config.write_text(good)
        proc.send_signal(signal.SIGHUP)
        reloaded = 'snapworker_config_reloads_total{result="ok"} 1'
        wait_for("the reload", lambda: reloaded in get(port, "/metrics")[1])
        wait_for("a reconcile after the reload", lambda: finished_runs(box) > runs_before)
        code, err = stop(proc)
    assert code == 0, err
    assert "bad queue message" in err
    assert "config reload refused" in err and "keep_last" in err
    no_double_action(box)


def test_concurrent_run_beside_the_daemon_does_not_double_act(sandbox: Sandbox) -> None:
    box = sandbox
    box.cluster("prod-a", env="prod")
    for d in (1, 2, 3, 4):
        box.automated("prod-a", d)
    daemon_config(box)
    with running_daemon(box) as proc:
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "snapworker", "run"],
                env=box.env(),
                cwd=box.tmp,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(r.wait(timeout=60), r.communicate()) for r in runs]
        for code, (_, err) in results:
            # 0: it did (part of) the work; 1: it found the policy leased and skipped it
            assert code in (0, 1), err
            if code == 1:
                assert "holds its lease" in err
        wait_for("copies shared", lambda: shared_copies(box, 4))
        code, err = stop(proc)
    assert code == 0, err
    no_double_action(box)
    assert moto_ext.call_counts()["CopyClusterSnapshot"] == 4
    assert moto_ext.call_counts()["AuthorizeSnapshotAccess"] == 8


def test_run_skips_a_leased_policy_and_takes_over_a_stale_lease(sandbox: Sandbox) -> None:
    from snapworker.adapters.store.repository import open_store

    box = sandbox
    box.cluster("prod-a", env="prod")
    box.automated("prod-a", 1)
    store = open_store(f"sqlite:///{box.db}")
    now = datetime.now(UTC)
    assert store.acquire_lease(
        "policy:prod-nightly/default/us-east-1", "other-host:1:x", timedelta(minutes=10), now
    )
    before = box.snapshots()
    busy = box.cli("run")
    assert busy.returncode == 1
    assert "prod-nightly: skipped, another snapworker" in busy.stderr
    assert box.snapshots() == before
    assert "CopyClusterSnapshot" not in moto_ext.call_counts()

    # the holder died: its lease expired (it stopped renewing), so the next run takes over
    store.release_lease("policy:prod-nightly/default/us-east-1", "other-host:1:x")
    assert store.acquire_lease(
        "policy:prod-nightly/default/us-east-1",
        "dead-host:2:y",
        timedelta(minutes=1),
        now - timedelta(hours=1),
    )
    store.close()
    took_over = box.cli("run")
    assert took_over.returncode == 0, took_over.stderr
    assert moto_ext.call_counts()["CopyClusterSnapshot"] == 1
