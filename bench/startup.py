"""Start-up: a ``snapworker run`` with nothing to do, against ``python -c "import boto3"``,
as a ratio (median of ``--repeat`` runs each, alternated, measured in the same run); and
against a bare boto3 script making the run's two listing calls, the floor of any tool that
reads the inventory with boto3.

The run is the real CLI against an empty moto sandbox (``python -m snapworker.sandbox.server
serve --port 0``: no clusters, no snapshots) with a state DB whose schema is current (a
first run creates it before the measurements): so it imports what a cron tick imports,
opens the state DB, lists clusters and snapshots (one call each), plans nothing, records
its run and exits. Every command runs with byte-code caching on, in a scratch cache the
first run of each fills (see ``bench/_commands.py``). ``--importtime`` also prints the
heaviest top-level imports of one run (``python -X importtime``).
Usage: ``.venv/bin/python bench/startup.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._commands import command_env, start_sandbox, timed

CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
policies:
  - name: nightly
    select:
      clusters: ["prod-*"]
    retention:
      max_age_days: 35
"""


BARE = """\
import boto3
client = boto3.session.Session(region_name="us-east-1").client("redshift")
client.describe_clusters()
client.describe_cluster_snapshots()
"""
"""The least any boto3 program doing a run's reads pays: the client (botocore loads
Redshift's service model and the endpoint rules) and the two listing calls."""


def top_imports(cmd: list[str], env: dict[str, str], n: int = 12) -> list[tuple[int, str]]:
    r = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True
    )
    rows = []
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and not name.startswith("  "):  # top level only
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    server, url = start_sandbox(seed=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp, "snapworker.yaml")
            cfg.write_text(CONFIG.format(db=Path(tmp, "state.db")))
            env = command_env(Path(tmp), url)
            run = [sys.executable, "-m", "snapworker", "run", "-c", str(cfg)]
            boto3 = [sys.executable, "-c", "import boto3"]
            bare = [sys.executable, "-c", BARE]
            timed(run, env)  # creates the state DB (schema migrations) and warms the caches
            timed(boto3, env)
            timed(bare, env)
            runs, imports, bares = [], [], []
            for _ in range(args.repeat):
                imports.append(timed(boto3, env)[0])
                bares.append(timed(bare, env)[0])
                runs.append(timed(run, env)[0])
            heavy = top_imports(run, env) if args.importtime else []
    finally:
        server.terminate()
        server.wait(timeout=30)
    b, r, f = statistics.median(imports), statistics.median(runs), statistics.median(bares)
    n = args.repeat
    print(f'python -c "import boto3":                  {b:.3f} s (median of {n})')
    print(f"boto3 client + the run's two listing calls: {f:.3f} s (median of {n})")
    print(f"snapworker run (nothing to do):             {r:.3f} s (median of {n})")
    print(f"ratio run / import boto3:                   {r / b:.2f}")
    print(f"ratio run / bare boto3 doing its calls:     {r / f:.2f}")
    if heavy:
        print("\nheaviest top-level imports of one run (cumulative, python -X importtime):")
        for us, name in heavy:
            print(f"  {us / 1000:8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
