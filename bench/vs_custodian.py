"""Wall time of ``snapworker plan`` against Cloud Custodian (c7n) running an equivalent age
policy with ``--dryrun``, on the same moto inventory, as a ratio measured in the same run.

The inventory is the sandbox's demo estate, served by ``python -m snapworker.sandbox.server
serve --port 0 --seed`` (moto's server with snapworker's extension); both tools reach it
through ``AWS_ENDPOINT_URL``. c7n runs from its own virtual environment, ``bench/.c7n-venv``
(it pins its own boto3), which this script creates with ``python -m venv`` and ``pip install
c7n`` if it is missing; if that fails, it says so and prints snapworker's figure alone.

The c7n policy: resource ``redshift-snapshot``, filter ``age`` days > 35, action ``delete``;
snapworker's: the sandbox config (``config/sandbox.yaml``: retention ``max_age_days 35``,
``keep_last 3``, plus copies and shares). Each figure is the median of ``--repeat`` runs
(after one warm-up of each, which also fills a scratch byte-code cache both use: see
``bench/_commands.py``). c7n runs with ``--cache-period 0``: its default keeps each listing
15 minutes in ``~/.cache/cloud-custodian.cache``, and a timed run would read that instead
of the sandbox.
Usage: ``.venv/bin/python bench/vs_custodian.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._commands import ROOT, command_env, start_sandbox, timed

VENV = ROOT / "bench" / ".c7n-venv"
C7N_POLICY = """\
policies:
  - name: redshift-snapshots-over-35-days
    resource: redshift-snapshot
    filters:
      - type: age
        days: 35
        op: gt
    actions:
      - delete
"""


def custodian() -> Path | None:
    exe = VENV / "bin" / "custodian"
    if exe.exists():
        return exe
    print(f"installing c7n into {VENV} ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "c7n"],
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as e:
        print(f"c7n could not be installed here ({e}); comparing nothing, snapworker only.")
        return None
    return exe if exe.exists() else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    exe = custodian()
    proc, url = start_sandbox(seed=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            cfg = (ROOT / "config" / "sandbox.yaml").read_text()
            cfg = cfg.replace("sqlite:///snapworker-demo.db", f"sqlite:///{work / 'state.db'}")
            (work / "snapworker.yaml").write_text(cfg)
            (work / "c7n.yml").write_text(C7N_POLICY)
            env = command_env(work, url)  # byte-code caching on for both tools
            sw = [sys.executable, "-m", "snapworker", "plan", "-c", str(work / "snapworker.yaml")]
            sw_json = [*sw, "--format", "json"]
            c7n = (
                None
                if exe is None
                # --cache-period 0: c7n keeps a listing 15 minutes by default, so the timed
                # runs after the warm-up would otherwise list nothing at all.
                else [
                    *(str(exe), "run", "--dryrun", "--cache-period", "0"),
                    *("-s", str(work / "out"), str(work / "c7n.yml")),
                ]
            )
            # Warm-ups: the state DB's schema; c7n's first import of its resource maps.
            _, out = timed(sw_json, env, work)
            deletes = sum(1 for a in json.loads(out)["actions"] if a["action"] == "delete")
            matched = None
            if c7n is not None:
                timed(c7n, env, work)
                res = work / "out" / "redshift-snapshots-over-35-days" / "resources.json"
                matched = len(json.loads(res.read_text())) if res.exists() else None
            sw_times, c7n_times = [], []
            for _ in range(args.repeat):
                sw_times.append(timed(sw, env, work)[0])
                if c7n is not None:
                    shutil.rmtree(work / "out", ignore_errors=True)
                    c7n_times.append(timed(c7n, env, work)[0])
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    sw_med = statistics.median(sw_times)
    print(
        f"snapworker plan:           {sw_med:.2f} s (median of {args.repeat}); "
        f"plans {deletes} deletes"
    )
    if c7n_times:
        c7n_med = statistics.median(c7n_times)
        print(
            f"custodian run --dryrun:    {c7n_med:.2f} s (median of {args.repeat}); "
            f"matches {matched} snapshots older than 35 days"
        )
        print(f"ratio snapworker / c7n:    {sw_med / c7n_med:.2f}  (below 1: snapworker is faster)")
    else:
        print("custodian: not measured (c7n is not installed; see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
