"""Long life: many reconcile ticks of an unchanged inventory, in-process; memory stays flat.

Seeds moto in-process (with snapworker's extension) with a few clusters and their automated
snapshots, lets the daemon's reconcile job copy and share them all, then runs ``--ticks``
reconcile ticks that find nothing to do, exactly as the daemon's interval job runs them
(``Daemon.reconcile``: lease, observe, plan, apply nothing, journal the run, metrics, log).
The state DB is a temporary SQLite file; logs go to /dev/null as JSON lines.

Prints resident memory (RSS) after a warm-up and at checkpoints to the end, with the ratio
end/start, and the mean tick time as a ratio against a baseline measured in the same run:
one bare DescribeClusterSnapshots call (MaxRecords=100) against the same moto backend,
sampled every fifth tick throughout the run.

    .venv/bin/python bench/daemon_ticks.py               # 10,000 ticks
    .venv/bin/python bench/daemon_ticks.py --ticks 2000
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
retry:
  attempts: 2
  wait_initial_seconds: 0
  wait_max_seconds: 0
policies:
  - name: prod-nightly
    select:
      clusters: ["prod-*"]
    copy_automated: true
    share:
      accounts: ["111122223333", "amazon-redshift-support"]
    retention:
      max_age_days: 35
      keep_last: 3
"""


def rss_mib() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(client: Any, clusters: int, snapshots: int) -> None:
    from snapworker.sandbox import moto_ext

    be = moto_ext.backend("123456789012", "us-east-1")
    now = datetime.now(UTC)
    for i in range(clusters):
        cid = f"prod-{i}"
        client.create_cluster(
            ClusterIdentifier=cid,
            NodeType="ra3.xlplus",
            MasterUsername="admin",
            MasterUserPassword="Passw0rd-bench",
        )
        for sid in [s for s, snap in be.snapshots.items() if snap.cluster_identifier == cid]:
            moto_ext.drop_snapshot(be, sid)
    per = max(1, snapshots // clusters)
    for i in range(clusters):
        for k in range(per):  # every 9 h over the last ~3 weeks: all inside retention
            t = now - timedelta(hours=9 * k + 1)
            moto_ext.add_automated_snapshot(be, f"prod-{i}", create_time=t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=10_000)
    ap.add_argument("--clusters", type=int, default=3)
    ap.add_argument("--snapshots", type=int, default=50, help="automated snapshots in all")
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args(argv)

    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "SNAPWORKER_FAKE_NOW"):
        os.environ.pop(k, None)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")

    import boto3
    from moto import mock_aws

    from snapworker.config import load_config
    from snapworker.entrypoints.daemon import Daemon
    from snapworker.logs import configure
    from snapworker.sandbox import moto_ext
    from snapworker.service.bootstrap import bootstrap

    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    configure(json=True, file=devnull)

    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        moto_ext.install()
        moto_ext.set_creating_polls(0)
        client = boto3.client("redshift", region_name="us-east-1")
        seed(client, args.clusters, args.snapshots)
        path = Path(tmp) / "snapworker.yaml"
        path.write_text(CONFIG.format(db=Path(tmp) / "state.db"))
        cfg = load_config(path)

        def factory(c: Any, store: Any, sleep: Any) -> Any:
            return bootstrap(c, client=client, store=store, sleep=sleep)

        d = Daemon(cfg, path, runtime_factory=factory)
        # steady state: copy everything, then share everything
        for _ in range(5):
            result = d.reconcile()
            assert result is not None
        assert result is not None and result.outcomes == [], "inventory did not settle"
        n_snaps = len(d.rt.gateway.list_snapshots())

        def bare_call() -> None:
            client.describe_cluster_snapshots(MaxRecords=100)

        def timed_bare_call() -> float:
            t0 = time.perf_counter()
            bare_call()
            return time.perf_counter() - t0

        for _ in range(20):
            bare_call()
        # The baseline is sampled throughout the run (one bare call every 5th tick), so a
        # machine whose load changes during the run moves both figures alike.
        base_times = [timed_bare_call() for _ in range(20)]

        for _ in range(args.warmup):
            d.reconcile()
        gc.collect()
        start_rss = rss_mib()
        checkpoints = [(0, start_rss)]
        every = max(1, args.ticks // 10)
        times: list[float] = []
        for i in range(1, args.ticks + 1):
            t0 = time.perf_counter()
            r = d.reconcile()
            times.append(time.perf_counter() - t0)
            if r is None or r.outcomes:
                print("a tick acted or failed: the inventory is not unchanged", file=sys.stderr)
                return 1
            if i % 5 == 0:
                base_times.append(timed_bare_call())
            if i % every == 0:
                gc.collect()
                checkpoints.append((i, rss_mib()))
        end_rss = checkpoints[-1][1]
        d.rt.store.close()

    mean_tick = statistics.mean(times)
    baseline = statistics.mean(base_times)
    print(
        f"inventory: {args.clusters} clusters, {n_snaps} snapshots "
        f"({n_snaps // 2} automated + their copies); {args.ticks} reconcile ticks"
    )
    print("RSS (MiB) by tick: " + ", ".join(f"{i}: {m:.1f}" for i, m in checkpoints))
    print(f"RSS start {start_rss:.1f} MiB, end {end_rss:.1f} MiB, ratio {end_rss / start_rss:.3f}")
    print(
        f"mean tick {mean_tick * 1000:.2f} ms = {mean_tick / baseline:.1f} x one bare "
        f"DescribeClusterSnapshots ({baseline * 1000:.2f} ms); "
        f"median {statistics.median(times) * 1000:.2f} ms, "
        f"first tenth {statistics.mean(times[: max(1, len(times) // 10)]) * 1000:.2f} ms, "
        f"last tenth {statistics.mean(times[-max(1, len(times) // 10) :]) * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
