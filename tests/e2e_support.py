"""End-to-end support: moto's server (with snapworker's extension) in this process, and the
``snapworker`` CLI run as a real subprocess against it, on a real SQLite file.

The server runs in-process so tests can seed back-dated snapshots through moto's backend;
the CLI only ever talks HTTP to it, exactly as it would to AWS. A run given
``SNAPWORKER_KILL_AT`` goes through the crash rig (``tests/rigs/crash_cli.py``), which installs
the crash points the product does not carry.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from snapworker.sandbox import moto_ext
from tests.rigs import crash

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
retry:
  attempts: 4
  wait_initial_seconds: 0
  wait_max_seconds: 0
policies:
  - name: prod-nightly
    select:
      clusters: ["prod-*"]
      tags: {{env: prod}}
    copy_automated: true
    share:
      accounts: ["111122223333", "amazon-redshift-support"]
    retention:
      max_age_days: 35
      keep_last: 3
    limits:
      max_deletes_per_run: 20
"""


@dataclass
class Sandbox:
    url: str
    tmp: Path

    @property
    def db(self) -> Path:
        return self.tmp / "state.db"

    @property
    def config(self) -> Path:
        return self.tmp / "snapworker.yaml"

    def client(self) -> Any:
        return boto3.client(
            "redshift",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"],
        )

    def backend(self) -> Any:
        return moto_ext.backend(ACCOUNT, REGION)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAPWORKER_"))}
        env.update(CREDS)
        env.update(
            AWS_REGION=REGION,
            AWS_ENDPOINT_URL=self.url,
            SNAPWORKER_CONFIG=str(self.config),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def cli(
        self, *args: str, timeout: float | str = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """``snapworker ARGS`` in a subprocess (``env`` adds to :meth:`env`); with
        ``SNAPWORKER_KILL_AT`` in *env*, the same command run by the crash rig, which kills it
        at that mutation. (``timeout`` also admits a str only so that callers passing
        ``**a_dict_of_strings`` type-check.)"""
        entry = "snapworker"
        full_env = self.env(**env)
        if full_env.get(crash.ENV):
            entry = "tests.rigs.crash_cli"
            path = [str(ROOT), full_env.get("PYTHONPATH", "")]
            full_env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        return subprocess.run(
            [sys.executable, "-m", entry, *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=float(timeout),
            cwd=self.tmp,
        )

    def write_config(self, text: str = CONFIG) -> None:
        self.config.write_text(text.format(db=self.db))

    # -- seeding ------------------------------------------------------------------------

    def cluster(self, cid: str, **tags: str) -> None:
        self.client().create_cluster(
            ClusterIdentifier=cid,
            NodeType="ra3.xlplus",
            MasterUsername="admin",
            MasterUserPassword="Passw0rd-demo",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        # Drop the automated snapshot moto makes at CreateCluster: tests seed their own.
        be = self.backend()
        for sid in [s for s, snap in be.snapshots.items() if snap.cluster_identifier == cid]:
            moto_ext.drop_snapshot(be, sid)

    def automated(self, cid: str, age_days: float, now: datetime | None = None) -> str:
        t = (now or datetime.now(UTC)) - timedelta(days=age_days)
        return str(
            moto_ext.add_automated_snapshot(self.backend(), cid, create_time=t).snapshot_identifier
        )

    def manual(self, sid: str, cid: str, age_days: float, **tags: str) -> None:
        t = datetime.now(UTC) - timedelta(days=age_days)
        moto_ext.add_manual_snapshot(self.backend(), cid, sid, create_time=t, tags=tags)

    # -- observing ----------------------------------------------------------------------

    def snapshots(self) -> dict[str, dict[str, Any]]:
        """Every snapshot as AWS reports it: id -> {type, status, tags, accounts}."""
        out: dict[str, dict[str, Any]] = {}
        marker = None
        while True:
            kw: dict[str, Any] = {"MaxRecords": 100}
            if marker:
                kw["Marker"] = marker
            page = self.client().describe_cluster_snapshots(**kw)
            for s in page["Snapshots"]:
                out[s["SnapshotIdentifier"]] = {
                    "type": s["SnapshotType"],
                    "status": s["Status"],
                    "cluster": s["ClusterIdentifier"],
                    "tags": {t["Key"]: t["Value"] for t in s.get("Tags", [])},
                    "accounts": sorted(
                        a.get("AccountId") or a.get("AccountAlias")
                        for a in s.get("AccountsWithRestoreAccess", [])
                    ),
                }
            marker = page.get("Marker")
            if not marker:
                return out

    def journal(self) -> list[dict[str, Any]]:
        con = sqlite3.connect(self.db)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute("select * from journal order by id")]
        finally:
            con.close()


def reset(url: str) -> None:
    req = urllib.request.Request(url + "/moto-api/reset", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=10).read()
    moto_ext.reset_call_counts()
    moto_ext.set_creating_polls(0)
    moto_ext.clear_faults()


def plan_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- a fleet: several accounts and regions on the one server --------------------------------

ROLE_NAME = "snapworker"


def role_arn(account: str) -> str:
    """The role a fleet target assumes in ``account``."""
    return f"arn:aws:iam::{account}:role/{ROLE_NAME}"


@dataclass
class PairEstate:
    """One (account, region) of the sandbox server, seeded and observed as :class:`Sandbox`
    does its default account and region. moto keeps a backend per account and region, so the
    same cluster and snapshot ids in two pairs name two snapshots. Observing goes through the
    API in that account (moto's ``x-moto-account-id`` header), never through the worker."""

    url: str
    account: str
    region: str

    def client(self) -> Any:
        client = boto3.client(
            "redshift",
            region_name=self.region,
            endpoint_url=self.url,
            aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"],
        )
        account = self.account

        def in_account(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign.redshift", in_account)
        return client

    def backend(self) -> Any:
        return moto_ext.backend(self.account, self.region)

    def cluster(self, cid: str, **tags: str) -> None:
        self.client().create_cluster(
            ClusterIdentifier=cid,
            NodeType="ra3.xlplus",
            MasterUsername="admin",
            MasterUserPassword="Passw0rd-demo",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        be = self.backend()
        for sid in [s for s, snap in be.snapshots.items() if snap.cluster_identifier == cid]:
            moto_ext.drop_snapshot(be, sid)

    def automated(self, cid: str, at: datetime) -> str:
        """An automated snapshot of ``cid`` taken at ``at`` (its id follows from the time, so
        the same time gives the same id in every pair)."""
        return str(
            moto_ext.add_automated_snapshot(self.backend(), cid, create_time=at).snapshot_identifier
        )

    def snapshots(self) -> dict[str, dict[str, Any]]:
        """Every snapshot of the pair as AWS reports it (see :meth:`Sandbox.snapshots`)."""
        out: dict[str, dict[str, Any]] = {}
        kw: dict[str, Any] = {"MaxRecords": 100}
        while True:
            page = self.client().describe_cluster_snapshots(**kw)
            for s in page["Snapshots"]:
                out[s["SnapshotIdentifier"]] = {
                    "type": s["SnapshotType"],
                    "status": s["Status"],
                    "cluster": s["ClusterIdentifier"],
                    "tags": {t["Key"]: t["Value"] for t in s.get("Tags", [])},
                    "accounts": sorted(
                        a.get("AccountId") or a.get("AccountAlias")
                        for a in s.get("AccountsWithRestoreAccess", [])
                    ),
                }
            if not page.get("Marker"):
                return out
            kw["Marker"] = page["Marker"]

    def owned(self, policy: str) -> dict[str, dict[str, Any]]:
        """The snapshots of the pair that ``policy`` owns (by their ownership tags)."""
        return {
            sid: s
            for sid, s in self.snapshots().items()
            if s["tags"].get("snapworker:policy") == policy
        }

    def requests(
        self,
        operation: str | None = None,
        served: dict[tuple[str, str, str, str], int] | None = None,
    ) -> dict[tuple[str, str], int]:
        """Redshift requests that reached the server in this pair (faulted ones included),
        by (operation, target): the snapshot, ``SNAPSHOT GRANTEE`` for a share or revoke.
        ``served``: counts taken earlier with :func:`served` (this module's observing
        requests count too: take them before observing), else the server's now."""
        counts = moto_ext.requests_by_pair() if served is None else served
        return {
            (op, target): n
            for (account, region, op, target), n in counts.items()
            if (account, region) == (self.account, self.region)
            and (operation is None or op == operation)
        }

    def mutations(
        self, served: dict[tuple[str, str, str, str], int] | None = None
    ) -> dict[str, int]:
        """The mutating requests of :meth:`requests`, by operation."""
        out: dict[str, int] = {}
        for (op, _), n in self.requests(served=served).items():
            if op in MUTATIONS:
                out[op] = out.get(op, 0) + n
        return out

    def sent_twice(
        self, served: dict[tuple[str, str, str, str], int] | None = None
    ) -> dict[tuple[str, str], int]:
        """Mutations the pair received more than once for the same snapshot (and grantee)."""
        return {
            k: n for k, n in self.requests(served=served).items() if k[0] in MUTATIONS and n > 1
        }


MUTATIONS = frozenset(
    {
        "CreateClusterSnapshot",
        "CopyClusterSnapshot",
        "DeleteClusterSnapshot",
        "AuthorizeSnapshotAccess",
        "RevokeSnapshotAccess",
        "ModifyClusterSnapshot",
        "CreateTags",
        "DeleteTags",
    }
)
"""The Redshift operations that change something (what a failed pair must never send)."""


def estate(box: Sandbox, account: str, region: str) -> PairEstate:
    return PairEstate(box.url, account, region)


def served() -> dict[tuple[str, str, str, str], int]:
    """The Redshift requests the server received since its counts were last cleared, by
    (account, region, operation, target), faulted ones included: take them right after the
    command under test, before observing (observing is counted too)."""
    return moto_ext.requests_by_pair()


def fresh_counts() -> None:
    """Zero the server's request counts, and lift any fault plan."""
    moto_ext.clear_faults()
    moto_ext.reset_call_counts()


def run_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a command printed on stdout (whatever its exit code)."""
    return json.loads(result.stdout)


# -- freezing a worker in the middle of a call ---------------------------------------------


def pid_of_caller(environ: dict[str, Any]) -> int | None:
    """The pid of the snapworker process that signed a request with assumed-role
    credentials: moto keeps each AssumeRole's session name, and the worker's is
    ``snapworker-<host>-<pid>``. None for the worker's own credentials."""
    from moto.sts.models import sts_backends

    m = re.search(r"Credential=([^/,\s]+)/", str(environ.get("HTTP_AUTHORIZATION", "")))
    if not m:
        return None
    for account in list(sts_backends.values()):
        for backend in list(account.values()):
            for role in list(backend.assumed_roles):
                if role.access_key_id == m.group(1):
                    tail = re.search(r"-(\d+)$", role.session_name)
                    return int(tail.group(1)) if tail else None
    return None


@dataclass
class Frozen:
    """What :class:`FreezeOnCall` did: the process it stopped, and the call it stopped it in
    (account, region, operation, request key)."""

    pid: int
    account: str
    region: str
    operation: str
    key: str


class FreezeOnCall:
    """While active (a context manager), the first ``operation`` request that reaches the
    sandbox server (in this process) from one of ``pids`` is processed, then its sender is
    stopped with SIGSTOP before the answer goes back: a worker frozen in the middle of an AWS
    call whose effect AWS already has. Needs a fault plan with ``latency_seconds`` (the
    server's slow path, which answers after processing); :attr:`frozen` is set once it
    happened. Resuming (SIGCONT) is the test's."""

    def __init__(self, operation: str, pids: set[int]) -> None:
        import threading

        self.operation = operation
        self.pids = pids
        self.frozen: Frozen | None = None
        self.happened = threading.Event()
        self.sent: list[tuple[float, int | None, str, str, str, str]] = []
        """Every mutating request while active: (time.monotonic(), sender pid, account,
        region, operation, request key), in the order the server received them."""
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> FreezeOnCall:
        from snapworker.sandbox.moto_ext import admin

        self._original = admin.inject
        admin.inject = self._inject
        return self

    def __exit__(self, *exc: object) -> None:
        from snapworker.sandbox.moto_ext import admin

        admin.inject = self._original

    def _inject(
        self,
        kind: str,
        op: str,
        key: str,
        app: Any,
        environ: dict[str, Any],
        start_response: Any,
        account: str = ACCOUNT,
    ) -> Any:
        import signal

        pid = pid_of_caller(environ) if op in MUTATIONS else None
        scope = re.search(
            r"Credential=[^/]+/[^/]+/([^/]+)/", str(environ.get("HTTP_AUTHORIZATION"))
        )
        region = scope.group(1) if scope else ""
        with self._lock:
            if op in MUTATIONS:
                self.sent.append((time.monotonic(), pid, account, region, op, key))
            chosen = (
                kind == "latency"
                and op == self.operation
                and pid is not None
                and pid in self.pids
                and self.frozen is None
            )
            if chosen:
                assert pid is not None
                self.frozen = Frozen(pid, account, region, op, key)
        if not chosen:
            return self._original(kind, op, key, app, environ, start_response, account=account)
        assert pid is not None

        def then_freeze(env: dict[str, Any], respond: Any) -> Iterable[bytes]:
            body = list(app(env, respond))  # AWS has done it ...
            os.kill(pid, signal.SIGSTOP)  # ... and the caller is frozen before it hears
            self.happened.set()
            return body

        return self._original(kind, op, key, then_freeze, environ, start_response, account=account)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll ``check`` every ``every`` seconds until it returns something truthy, at most
    ``timeout`` seconds (a bounded wait on a condition, not a timing test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
