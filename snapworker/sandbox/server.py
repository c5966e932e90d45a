"""A Redshift sandbox on moto, with snapworker's moto extension, for demos and tests.

Three ways in:

- :func:`embedded` — in-process ``moto.mock_aws()`` with fake credentials and the demo seeded;
  used by ``snapworker demo``.
- :func:`serve` — moto's server in a thread of this process; returns ``(server, url)``. With
  :func:`seed_demo`, what ``snapworker sandbox`` serves to a user.
- ``python -m snapworker.sandbox.server serve --port N [--seed] [--now ISO] [--creating-polls N]
  [--verbose]`` — the same server in the foreground until SIGTERM/SIGINT; prints
  ``READY http://HOST:PORT`` (flushed) once it accepts requests. ``--port 0`` picks a free port.

The server also answers snapworker's admin endpoints (``GET /_snapworker/calls``, ...; see
``snapworker.sandbox.moto_ext``). moto is an optional dependency (the ``sandbox`` extra) and is
imported only when one of these is used.

The demo (:func:`seed_demo`), in account 123456789012, region ``us-east-1``:

- clusters ``prod-a`` and ``prod-b`` (tag ``env=prod``) and ``dev-a`` (tag ``env=dev``);
- automated snapshots of ``prod-a`` and ``prod-b`` aged 1, 2, 5, 12, 30, 40 and 50 days, and of
  ``dev-a`` aged 1 and 2 days, all ``available``, ids ``rs:<cluster>-YYYY-MM-DD-HH-MM``;
- on ``prod-a``, two manual snapshots nobody's worker owns, which it must never touch:
  ``sw-prod-nightly-prod-a-20260101-0300-deadbeef`` (named like a worker snapshot, no tags,
  120 days old) and ``manual-keep-forever`` (tag ``owner=dba``, 400 days old).

The automated snapshot moto makes at CreateCluster time is removed, so that the inventory is
a function of ``now`` alone (moto would date it by the wall clock). Call counters are reset at
the end of seeding, so tests count only their own calls.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

__all__ = [
    "AUTOMATED_AGES_DAYS",
    "DEMO_ACCOUNT",
    "DEMO_CLUSTERS",
    "DEMO_REGION",
    "FAKE_CREDENTIALS",
    "UNOWNED_SNAPSHOTS",
    "Sandbox",
    "embedded",
    "main",
    "seed_demo",
    "serve",
]

DEMO_REGION = "us-east-1"
DEMO_ACCOUNT = "123456789012"  # moto's default account
DEMO_CLUSTERS: dict[str, dict[str, str]] = {
    "prod-a": {"env": "prod"},
    "prod-b": {"env": "prod"},
    "dev-a": {"env": "dev"},
}
AUTOMATED_AGES_DAYS: dict[str, tuple[int, ...]] = {
    "prod-a": (1, 2, 5, 12, 30, 40, 50),
    "prod-b": (1, 2, 5, 12, 30, 40, 50),
    "dev-a": (1, 2),
}
# id -> (cluster, age in days, tags)
UNOWNED_SNAPSHOTS: dict[str, tuple[str, int, dict[str, str]]] = {
    "sw-prod-nightly-prod-a-20260101-0300-deadbeef": ("prod-a", 120, {}),
    "manual-keep-forever": ("prod-a", 400, {"owner": "dba"}),
}
FAKE_CREDENTIALS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}
# Unset inside embedded(): they would send boto3 elsewhere than the in-process mock.
_ENV_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_REDSHIFT",
)


@dataclass(frozen=True)
class Sandbox:
    """What :func:`embedded` yields."""

    region: str
    account_id: str
    now: datetime


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def seed_demo(
    now: datetime,
    region: str = DEMO_REGION,
    *,
    endpoint_url: str | None = None,
    account_id: str = DEMO_ACCOUNT,
) -> None:
    """Create the demo clusters (through boto3) and snapshots (through moto's backend).

    Works inside whatever moto is active: ``mock_aws`` (no *endpoint_url*), or a moto server
    running in this process (pass its *endpoint_url*). See the module docstring for the data;
    *account_id* and *region* say which pair gets it (seeding several pairs gives each the
    same cluster and snapshot ids, as a fleet's tests want).
    """
    import boto3

    from snapworker.sandbox import moto_ext

    moto_ext.install()
    now = _utc(now).replace(second=0, microsecond=0)
    client = boto3.client(
        "redshift",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )

    def in_account(request: Any, **_: Any) -> None:
        # moto's own way to name the account a request acts in (its credentials would map to
        # the default one): the clusters go where the snapshots below are put.
        request.headers["x-moto-account-id"] = account_id

    client.meta.events.register("before-sign.redshift", in_account)
    be = moto_ext.backend(account_id, region)
    for cluster_id, tags in DEMO_CLUSTERS.items():
        client.create_cluster(
            ClusterIdentifier=cluster_id,
            NodeType="ra3.xlplus",
            ClusterType="single-node",
            MasterUsername="admin",
            MasterUserPassword="Sandbox-Passw0rd",
            DBName="dev",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        # Drop the automated snapshot moto dates by the wall clock.
        for snap in list(be.snapshots.values()):
            if snap.cluster_identifier == cluster_id and snap.snapshot_type == "automated":
                moto_ext.drop_snapshot(be, snap.snapshot_identifier)
        for age in AUTOMATED_AGES_DAYS.get(cluster_id, ()):
            moto_ext.add_automated_snapshot(be, cluster_id, create_time=now - timedelta(days=age))
    for snapshot_id, (cluster_id, age, tags) in UNOWNED_SNAPSHOTS.items():
        moto_ext.add_manual_snapshot(
            be, cluster_id, snapshot_id, create_time=now - timedelta(days=age), tags=tags
        )
    moto_ext.reset_call_counts()


def _make_server(host: str, port: int) -> ThreadedMotoServer:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    from snapworker.sandbox import moto_ext

    class _Server(ThreadedMotoServer):
        """moto's threaded server, its WSGI app wrapped with snapworker's admin endpoints."""

        start_error: BaseException | None = None

        def _server_entry(self) -> None:
            app = moto_ext.admin_middleware(
                DomainDispatcherApplication(create_backend_app), seed=seed_demo
            )
            try:
                self._server = make_server(
                    self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
                )
            except (OSError, SystemExit) as exc:  # werkzeug exits on a bind error
                # start() waits for the ready event: set it, or it waits for ever.
                self.start_error = exc
                self._server_ready_event.set()
                return
            self._server_ready_event.set()
            self._server.serve_forever()

    return _Server(ip_address=host, port=port, verbose=False)


def _check_free(host: str, port: int) -> None:
    """OSError naming *host*:*port* if it cannot be listened on (werkzeug would print its
    own lines and exit instead)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: bool = False,
    *,
    now: datetime | None = None,
) -> tuple[ThreadedMotoServer, str]:
    """Install the extension and start moto's server in a thread; returns ``(server, url)``.

    ``port=0`` picks a free port; a port that cannot be listened on raises ``OSError``
    naming it. With *seed*, the demo is seeded as of *now* (default: the
    current time). Stop it with ``server.stop()``.
    """
    from snapworker.sandbox import moto_ext

    moto_ext.install()
    if port:
        _check_free(host, port)
    server = _make_server(host, port)
    server.start()
    error = getattr(server, "start_error", None)
    if error is not None:
        raise OSError(f"cannot listen on {host}:{port}: {error}")
    bound_host, bound_port = server.get_host_and_port()
    url = f"http://{bound_host}:{bound_port}"
    if seed:
        seed_demo(now or datetime.now(UTC), endpoint_url=url)
    return server, url


@contextmanager
def embedded(now: datetime, region: str = DEMO_REGION) -> Iterator[Sandbox]:
    """In-process sandbox: ``mock_aws``, the extension, fake credentials, the demo seeded.

    The AWS environment variables it sets (credentials, ``AWS_DEFAULT_REGION``,
    ``AWS_REGION``) or clears (profile, endpoint URLs) are restored on exit.
    """
    from moto import mock_aws

    from snapworker.sandbox import moto_ext

    saved = {k: os.environ.get(k) for k in (*FAKE_CREDENTIALS, *_ENV_CLEARED)}
    saved.update({k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "AWS_REGION")})
    try:
        with mock_aws():  # sets fake credentials of its own: ours go on top
            for k in _ENV_CLEARED:
                os.environ.pop(k, None)
            os.environ.update(FAKE_CREDENTIALS)
            os.environ["AWS_DEFAULT_REGION"] = region
            os.environ["AWS_REGION"] = region
            moto_ext.install()
            seed_demo(now, region)
            yield Sandbox(region=region, account_id=DEMO_ACCOUNT, now=_utc(now))
    finally:
        moto_ext.set_clock_shift(timedelta(0))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _parse_now(value: str) -> datetime:
    return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m snapworker.sandbox.server serve ...`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m snapworker.sandbox.server")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run moto's server with snapworker's extension")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p_serve.add_argument("--seed", action="store_true", help="seed the demo clusters")
    p_serve.add_argument("--now", type=_parse_now, default=None, help="ISO time for the seed")
    p_serve.add_argument("--verbose", action="store_true", help="log every request on stderr")
    p_serve.add_argument(
        "--creating-polls",
        type=int,
        default=None,
        help="new snapshots stay 'creating' for N describes (else $SNAPWORKER_MOTO_CREATING_POLLS)",
    )
    args = parser.parse_args(argv)

    from snapworker.sandbox import moto_ext

    if not args.verbose:  # werkzeug logs each request on stderr: a pipe nobody reads fills up
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    moto_ext.install()
    if args.creating_polls is not None:
        moto_ext.set_creating_polls(args.creating_polls)
    server, url = serve(args.host, args.port, seed=args.seed, now=args.now)
    print(f"READY {url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
