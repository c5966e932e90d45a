"""API calls by operation for an estate of 1,000 clusters and 20,000 snapshots, on moto's
server (with snapworker's extension, which counts every Redshift request it receives),
printed against the call floor:

    DescribeClusterSnapshots  ceil(snapshots / 100) pages
    DescribeClusters          ceil(clusters / 100) pages
    each mutation             one call (a copy: CopyClusterSnapshot + CreateTags)
    each delete               + one DescribeClusterSnapshots by id (the safety re-read)

Sequence: ``plan``, ``run`` (copies the newest automated snapshot of each cluster, revokes
and deletes the copy of each cluster that is past 35 days), ``plan``, ``run`` (shares the new
copies). Each command is the real CLI in a subprocess; the estate is seeded through moto's
backend (no API calls). Usage: ``.venv/bin/python bench/api_calls.py [--clusters N]
[--snapshots N]``. Takes a few minutes (the first run records ~17,000 adopted snapshots).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._estate import POLICY, SHARE, seed_moto

CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
  max_concurrency: 8
  max_calls_per_second: 100
retry:
  wait_initial_seconds: 0.1
  wait_max_seconds: 1
policies:
  - name: {policy}
    select:
      clusters: ["prod-*"]
    copy_automated: true
    share:
      accounts: ["{share}"]
    retention:
      max_age_days: 35
      keep_last: 3
    limits:
      max_deletes_per_run: 10000
"""


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapworker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )


def floor(snapshots: int, clusters: int, actions: list[dict[str, Any]]) -> Counter[str]:
    out: Counter[str] = Counter(
        {
            "DescribeClusterSnapshots": math.ceil(snapshots / 100),
            "DescribeClusters": math.ceil(clusters / 100),
        }
    )
    per_kind = {
        "copy": ["CopyClusterSnapshot", "CreateTags"],
        "create": ["CreateClusterSnapshot"],
        "share": ["AuthorizeSnapshotAccess"],
        "revoke": ["RevokeSnapshotAccess"],
        "delete": ["DeleteClusterSnapshot", "DescribeClusterSnapshots"],  # + the re-read
        "tag": ["CreateTags"],
    }
    for a in actions:
        for op in per_kind.get(a["action"], [a["action"]]):
            out[op] += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--snapshots", type=int, default=20000)
    args = ap.parse_args()

    from snapworker.sandbox import moto_ext
    from snapworker.sandbox.server import serve

    server, url = serve(port=0)
    try:
        be = moto_ext.backend()
        t0 = time.perf_counter()
        # One snapshot every 50 h: 20 per cluster span ~36 days, so each cluster holds one
        # copy past max_age_days 35 (revoke, re-read, delete) and one automated to copy.
        seed_moto(be, args.clusters, args.snapshots, datetime.now(UTC), timedelta(hours=50))
        print(
            f"seeded {len(be.clusters)} clusters, {len(be.snapshots)} snapshots "
            f"in {time.perf_counter() - t0:.1f} s (moto backend, no API calls)"
        )
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp, "snapworker.yaml")
            cfg.write_text(CONFIG.format(db=Path(tmp, "state.db"), policy=POLICY, share=SHARE))
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAP"))}
            env.update(
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench",
                AWS_REGION="us-east-1",
                AWS_ENDPOINT_URL=url,
                SNAPWORKER_CONFIG=str(cfg),
            )
            rows: list[tuple[str, Counter[str], Counter[str], float]] = []
            actions: list[dict[str, Any]] = []
            for step in ("plan", "run", "plan", "run"):
                snapshots, clusters = len(be.snapshots), len(be.clusters)
                moto_ext.reset_call_counts()
                t = time.perf_counter()
                if step == "plan":
                    r = cli(env, "plan", "--format", "json")
                    if r.returncode != 0:
                        raise SystemExit(f"plan failed: {r.stderr[-2000:]}")
                    actions = json.loads(r.stdout)["actions"]
                    expected = floor(snapshots, clusters, [])
                else:
                    r = cli(env, "run")
                    if r.returncode not in (0, 1):
                        raise SystemExit(f"run failed: {r.stderr[-2000:]}")
                    expected = floor(snapshots, clusters, actions)
                took = time.perf_counter() - t
                rows.append((step, Counter(moto_ext.call_counts()), expected, took))
            status = cli(env, "status", "--format", "json")
            worker_counts = json.loads(status.stdout)["runs"][0]["api_calls"]
    finally:
        server.stop()

    print(f"\nestate: {args.clusters} clusters, {args.snapshots} snapshots")
    ok = True
    for i, (step, got, expected, took) in enumerate(rows, 1):
        total, floor_total = sum(got.values()), sum(expected.values())
        ratio = total / floor_total if floor_total else float("nan")
        print(f"\n{i}. {step}: {total} calls, floor {floor_total} (ratio {ratio:.3f}), ", end="")
        print(f"{took:.1f} s")
        for op in sorted(set(got) | set(expected)):
            mark = "" if got[op] == expected[op] else "   <-- differs from the floor"
            ok &= not mark
            print(f"   {op:<28} {got[op]:>6}   floor {expected[op]:>6}{mark}")
    print("\nthe worker's own count of the last run (state DB, `snapworker status`):")
    for op, n in sorted(worker_counts.items()):
        print(f"   {op:<40} {n:>6}")
    print("\nall at the floor" if ok else "\nSOME OPERATIONS DIFFER FROM THE FLOOR")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
