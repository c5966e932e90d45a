"""Listing at scale: one account's 20,000 snapshots, account-wide pages one after another
against per-cluster listings in parallel, calls and wall time, as ratios measured in the
same run.

For each cluster count (``--clusters``, default 10, 100 and 1,000 clusters sharing
``--snapshots``, default 20,000, plus ``--orphans`` manual snapshots, default 50, of 5
clusters that no longer exist), a sandbox server is started in a subprocess (moto's server
with snapworker's extension, seeded through moto's backend: ``bench/_estate.py``'s estate)
and this process lists it with :mod:`snapworker.adapters.aws.listing`, through the
worker's own gateway (its paging, retries and call counting):

(a) ``sequential``: DescribeClusters, then the account-wide DescribeClusterSnapshots pages,
    one after another (what a run did before, and does below the threshold);
(b) ``per_cluster``: DescribeClusters, then each cluster's pages and the orphans' pages
    (``ClusterExists=false``) on ``--workers`` threads (default 4, 8 and 16);
(c) ``snapshots``, what the gateway does: account-wide, switching to (b) on
    ``listing.DEFAULT_WORKERS`` threads once ``listing.switch_after`` pages did not finish.

Every listing of (b) and (c) is checked against (a): the same snapshot ids, with the same content,
orphans included; a difference stops the benchmark.

moto's own cost is taken out of the timed runs on purpose. The sandbox spends about 0.4 s
of CPU serving one page of 100 snapshots (moto's XML serializer and its filtering of the
whole estate for each request), and its server is one Python process: timed as is, every
strategy measures moto's CPU, not round trips. So the first listing of each kind (the
warm-up, which is also the correctness check) is served by the sandbox itself, and the
server records each answer; the timed runs get the recorded answers of the same requests
(keyed by the request's parameters), through the sandbox's fault middleware, so that its
latency fault still applies: ``--latency`` (default 0 and 0.05 s) is added to every
listing request, since a real AWS round trip is not free and an in-memory answer
understates what overlapping them gains. The warm-up's wall time of (a), the sandbox's own,
is printed too.

Usage: ``.venv/bin/python bench/listing.py [--clusters 10,100,1000] [--workers 4,8,16]
[--latency 0,0.05] [--snapshots N] [--orphans N] [--repeat N]``. About 15 minutes with the
defaults on a 2-vCPU machine (mostly the sandbox serving the warm-ups).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._estate import POLICY, seed_moto

ROOT = Path(__file__).resolve().parent.parent
ORPHAN_CLUSTERS = 5
LISTING_OPS = ["DescribeClusterSnapshots", "DescribeClusters"]


# -- the server side (a subprocess: ``bench/listing.py --serve ...``) -----------------------


def replaying(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``app``, its answers to the two listing operations recorded by request parameters
    (and the caller's access key) and replayed when the same request comes again. Only for
    an estate nobody changes while it is listed."""
    recorded: dict[tuple[str, bytes], tuple[str, list[Any], bytes]] = {}
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        auth = str(environ.get("HTTP_AUTHORIZATION", ""))
        access_key = auth.split("Credential=", 1)[-1].split("/", 1)[0]
        listing = any(f"Action={op}&".encode() in body + b"&" for op in LISTING_OPS)
        key = (access_key, body)
        if listing:
            with lock:
                hit = recorded.get(key)
            if hit is not None:
                start_response(hit[0], hit[1])
                return [hit[2]]
        started: list[Any] = []
        out = b"".join(app(environ, lambda status, headers, *_: started.append((status, headers))))
        status, headers = started[0]
        if listing and status.startswith("200"):
            with lock:
                recorded[key] = (status, headers, out)
        start_response(status, headers)
        return [out]

    return wrapped


def serve_estate(clusters: int, snapshots: int, orphans: int) -> None:
    """Seed the estate, serve it (listing answers recorded, see :func:`replaying`), print
    ``READY <url>`` and run until stdin closes."""
    from snapworker.core import ids
    from snapworker.core.model import OwnedRecord
    from snapworker.core.ownership import ownership_tags
    from snapworker.sandbox import moto_ext
    from snapworker.sandbox.server import serve

    middleware = moto_ext.admin_middleware
    moto_ext.admin_middleware = lambda app, *a, **kw: middleware(replaying(app), *a, **kw)  # type: ignore[method-assign]
    server, url = serve(port=0)
    be = moto_ext.backend()
    now = datetime.now(UTC)
    seed_moto(be, clusters, snapshots, now, timedelta(hours=50))
    for k in range(orphans):  # manual copies of clusters deleted since, past retention
        cid = f"gone-{k % ORPHAN_CLUSTERS:02d}"
        t = now - timedelta(days=60 + k)
        src = f"rs:{cid}-{t:%Y-%m-%d-%H-%M}"
        sid = ids.copy_snapshot_id(POLICY, cid, src)
        rec = OwnedRecord(sid, POLICY, cid, "copy", t, source_id=src)
        moto_ext.add_manual_snapshot(be, cid, sid, create_time=t, tags=ownership_tags(rec))
    print(f"READY {url} {len(be.clusters)} {len(be.snapshots)}", flush=True)
    sys.stdin.read()
    server.stop()


# -- the client side ------------------------------------------------------------------------


def admin(url: str, method: str, what: str, data: Any = None) -> Any:
    req = urllib.request.Request(
        f"{url}/_snapworker/{what}",
        method=method,
        data=None if data is None else json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def set_latency(url: str, seconds: float) -> None:
    if seconds <= 0:
        admin(url, "DELETE", "faults")
        return
    plan = {"rate": 0, "latency_seconds": seconds, "operations": LISTING_OPS}
    admin(url, "POST", "faults", plan)


class Lister:
    """A new boto3 client and gateway for each listing (fresh call counts and connections),
    made before the clock starts."""

    def __init__(self, url: str, pool: int) -> None:
        self.url = url
        self.pool = pool

    def client(self) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        return boto3.client(
            "redshift",
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=BotoConfig(
                retries={"mode": "standard", "total_max_attempts": 3},
                max_pool_connections=self.pool,
                read_timeout=600,
            ),
        )

    def run(self, workers: int | None) -> tuple[float, int, dict[str, dict[str, Any]]]:
        """(wall seconds, calls, snapshots by id) of DescribeClusters then the listing:
        ``workers`` None is (a), 0 is (c), else (b) on that many threads."""
        from snapworker.adapters.aws import listing
        from snapworker.adapters.aws.client import CallStats, instrument
        from snapworker.adapters.aws.redshift import RedshiftGateway
        from snapworker.config import RetryConfig

        stats = CallStats()
        client = self.client()
        instrument(client, stats)
        gw = RedshiftGateway(client, RetryConfig(), stats)
        pages = functools.partial(
            gw._pages, "DescribeClusterSnapshots", "describe_cluster_snapshots", "Snapshots"
        )
        t = time.perf_counter()
        clusters = gw.list_clusters()
        if workers is None:
            items = listing.sequential(pages)
        elif workers == 0:
            items = listing.snapshots(pages, list(clusters), listing.DEFAULT_WORKERS)
        else:
            items = listing.per_cluster(pages, list(clusters), workers)
        took = time.perf_counter() - t
        return took, sum(stats.calls.values()), {raw["SnapshotIdentifier"]: raw for raw in items}


def start_server(clusters: int, snapshots: int, orphans: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAP"))}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", f"{clusters},{snapshots},{orphans}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    _, url, n_clusters, n_snaps = line.split()
    print(
        f"  seeded {n_clusters} clusters, {n_snaps} snapshots (+ {orphans} orphans' clusters gone)"
    )
    return proc, url


def check_same(what: str, got: dict[str, Any], want: dict[str, Any], orphans: int) -> None:
    if got != want:
        missing = sorted(set(want) - set(got))[:5]
        extra = sorted(set(got) - set(want))[:5]
        raise SystemExit(f"{what} lists something else: missing {missing}, extra {extra}")
    gone = sum(1 for raw in got.values() if raw["ClusterIdentifier"].startswith("gone-"))
    if gone != orphans:
        raise SystemExit(f"{what} lists {gone} orphans, not {orphans}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", default="10,100,1000")
    ap.add_argument("--workers", default="4,8,16")
    ap.add_argument("--latency", default="0,0.05", help="seconds added per listing request")
    ap.add_argument("--snapshots", type=int, default=20_000)
    ap.add_argument("--orphans", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each (median)")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        c, s, o = (int(x) for x in args.serve.split(","))
        serve_estate(c, s, o)
        return 0
    worker_counts = [int(w) for w in args.workers.split(",")]
    latencies = [float(x) for x in args.latency.split(",")]
    rows: list[str] = []
    for n in (int(c) for c in args.clusters.split(",")):
        print(f"{n} clusters, {args.snapshots} snapshots:", flush=True)
        proc, url = start_server(n, args.snapshots, args.orphans)
        try:
            lister = Lister(url, max(worker_counts) + 2)
            cold, calls_a, want = lister.run(None)  # served by the sandbox itself
            print(f"  warm-up (a), the sandbox serving: {cold:.1f} s, {calls_a} calls", flush=True)
            for w in sorted(set(worker_counts)):
                _, _, got = lister.run(w)
                check_same(f"per-cluster on {w} threads", got, want, args.orphans)
            _, _, got = lister.run(0)
            check_same("the chosen way", got, want, args.orphans)
            print(f"  (b) and (c) list exactly what (a) lists, {args.orphans} orphans included")
            for latency in latencies:
                set_latency(url, latency)
                times: dict[int | None, list[float]] = {}
                calls: dict[int | None, int] = {}
                for _ in range(args.repeat):
                    for w in [None, *worker_counts, 0]:
                        took, n_calls, got = lister.run(w)
                        check_same(f"workers={w}", got, want, args.orphans)
                        times.setdefault(w, []).append(took)
                        calls[w] = n_calls
                base = statistics.median(times[None])
                line = (
                    f"  latency {latency * 1000:.0f} ms: (a) sequential {base:6.2f} s "
                    f"{calls[None]:5d} calls"
                )
                print(line, flush=True)
                rows.append(
                    f"{n:5d} clusters, {latency * 1000:3.0f} ms: "
                    f"(a) {base:6.2f} s {calls[None]:5d} calls"
                )
                for w in [*worker_counts, 0]:
                    med = statistics.median(times[w])
                    name = f"(b) per cluster, {w:2d} threads" if w else "(c) the chosen way     "
                    ratios = f"wall {med / base:5.2f}x  calls {calls[w] / calls[None]:5.2f}x"
                    print(f"    {name}: {med:6.2f} s {calls[w]:5d} calls  {ratios}", flush=True)
                    rows.append(f"{'':18s}{name}: {med:6.2f} s {calls[w]:5d} calls  {ratios}")
            set_latency(url, 0)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=60)
    print("\nsummary (ratios against (a) in the same run; below 1: faster / fewer calls)")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
