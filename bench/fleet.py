"""A fleet against moto's server: 100 accounts x 4 regions x 5 clusters x 20 snapshots,
snapworker's ``plan`` and ``run`` over every (target, region) pair against c7n-org, in the
same run.

The estate is seeded through moto's backend in the server's process (no API calls): in
each account and region ``bench/_estate.py``'s clusters ``prod-0000``.. with the same ids in
every pair, one snapshot every 50 hours, so that each cluster has one automated snapshot to
copy and one copy past ``max_age_days 35`` to revoke and delete. snapworker reaches each
account by assuming ``arn:aws:iam::ACCOUNT:role/snapworker`` (moto maps the assumed role's
credentials to its account); so does c7n-org.

What it prints, each command timed once as a whole process (wall time, and its peak RSS
from ``os.wait4``), after warm-ups on one account's pairs (the state DB's schema, the
byte-code caches, c7n's imports):

- ``snapworker plan --format json`` over all pairs with ``fleet.max_parallel_targets`` 8
  (the default) and 1 (the pairs one after another): the speed-up;
- ``snapworker run`` until a run mutates nothing (converging: copies, revokes and deletes,
  then shares of the new copies); that run is the no-op run with 8, then one with 1;
- Redshift calls per pair of the plan and of the no-op run against the floor (per pair:
  ceil(clusters/100) DescribeClusters + ceil(snapshots/100) DescribeClusterSnapshots pages),
  counted by the sandbox's server; plus one sts:AssumeRole per account;
- ``c7n-org run --dryrun`` over the same accounts and regions (``accounts.yml``: account_id,
  name, role, regions) with the policy ``redshift-snapshot`` filtered by ``age`` > 35 days,
  the retention's equivalent, and the ratio snapworker plan / c7n-org (target: 0.5 or
  less).

c7n and c7n-org run from their own virtual environment, ``bench/.c7n-venv`` (they pin their
own boto3), which this script creates with ``pip install c7n c7n-org`` if it is missing;
without it the c7n-org side is skipped and said so. A snapworker without the fleet
(``targets:`` in the config, ``--target`` on the commands) stops the benchmark with a
message saying so.

Usage: ``.venv/bin/python bench/fleet.py [--accounts 100] [--regions R1,R2,..]
[--clusters 5] [--snapshots 20] [--skip-c7n] [--skip-snapworker]``.
Takes tens of minutes with the defaults on a 2-vCPU machine: moto's server spends about
0.3 s of CPU serving each page of 100 snapshots, to both tools alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".c7n-venv"
REGIONS = "us-east-1,us-west-2,eu-west-1,ap-southeast-2"
FIRST_ACCOUNT = 100_000_000_000
ROLE = "snapworker"
POLICY_NAME = "prod-nightly"
SHARE = "111122223333"

SNAPWORKER_CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: {region}
  max_concurrency: 4
  max_calls_per_second: 100
retry:
  wait_initial_seconds: 0.1
  wait_max_seconds: 1
fleet:
  max_parallel_targets: {parallel}
targets:
{targets}
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

C7N_POLICY = """\
policies:
  - name: redshift-snapshots-over-35-days
    resource: redshift-snapshot
    filters:
      - type: age
        days: 35
        op: gt
"""


def account_ids(n: int) -> list[str]:
    return [str(FIRST_ACCOUNT + i) for i in range(n)]


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{ROLE}"


# -- the server (a subprocess: ``bench/fleet.py --serve ...``) -----------------------------


def serve_fleet(accounts: int, regions: list[str], clusters: int, per_cluster: int) -> None:
    """Seed every (account, region) through moto's backend, print ``READY <url> <pairs>
    <snapshots>``, and serve until stdin closes."""
    from bench._estate import seed_moto
    from snapworker.sandbox import moto_ext
    from snapworker.sandbox.server import serve

    server, url = serve(port=0)
    now = datetime.now(UTC)
    total = 0
    for account in account_ids(accounts):
        for region in regions:
            be = moto_ext.backend(account, region)
            seed_moto(be, clusters, clusters * per_cluster, now, timedelta(hours=50))
            total += len(be.snapshots)
    moto_ext.reset_call_counts()
    print(f"READY {url} {accounts * len(regions)} {total}", flush=True)
    sys.stdin.read()
    server.stop()


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAP"))}
    spec = f"{args.accounts},{args.regions.replace(',', '+')},{args.clusters},{args.snapshots}"
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", spec],
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
    _, url, pairs, snaps = line.split()
    print(
        f"seeded {pairs} pairs ({args.accounts} accounts x {len(args.regions.split(','))} "
        f"regions), {snaps} snapshots, through moto's backend in {time.perf_counter() - t:.1f} s"
    )
    return proc, url, int(snaps)


def server_calls(url: str) -> tuple[Counter[str], dict[tuple[str, str], Counter[str]] | None]:
    """The Redshift calls the server counted since the last reset: by operation, and by
    (account, region) when the sandbox can tell (None if it cannot)."""
    with urllib.request.urlopen(f"{url}/_snapworker/calls", timeout=60) as r:
        total = Counter({k: int(v) for k, v in json.loads(r.read()).items()})
    try:
        with urllib.request.urlopen(f"{url}/_snapworker/calls?by=pair", timeout=60) as r:
            rows = json.loads(r.read())
    except (OSError, ValueError):
        return total, None
    if not isinstance(rows, list):
        return total, None
    pairs: dict[tuple[str, str], Counter[str]] = {}
    for account, region, op, _target, n in rows:
        pairs.setdefault((account, region), Counter())[op] += int(n)
    return total, pairs


def reset_calls(url: str) -> None:
    req = urllib.request.Request(f"{url}/_snapworker/calls", method="DELETE")
    urllib.request.urlopen(req, timeout=60).close()


# -- commands -------------------------------------------------------------------------------


class Result:
    def __init__(self, wall: float, rss_mb: float, code: int, out: str, err: str) -> None:
        self.wall, self.rss_mb, self.code, self.out, self.err = wall, rss_mb, code, out, err


def measured(cmd: list[str], env: dict[str, str], cwd: Path, ok: tuple[int, ...] = (0,)) -> Result:
    """Run ``cmd``; its wall time and peak RSS (``os.wait4``: this child and the children
    it waited for). An exit code outside ``ok`` stops the benchmark."""
    with tempfile.TemporaryFile(mode="w+") as out_f, tempfile.TemporaryFile(mode="w+") as err_f:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out_f, stderr=err_f, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    if proc.returncode not in ok:
        head = " ".join(cmd[:4])
        raise SystemExit(f"{head} ... failed ({proc.returncode}):\n{out[-2000:]}{err[-2000:]}")
    return Result(wall, usage.ru_maxrss / 1024, proc.returncode, out, err)


def base_env(work: Path, url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SNAP")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        PYTHONPYCACHEPREFIX=str(work / "pycache"),
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=url,
    )
    return env


def write_snapworker_config(
    work: Path, accounts: list[str], regions: list[str], parallel: int
) -> Path:
    targets = "\n".join(
        f"  - name: acct-{i:03d}\n    role_arn: {role_arn(a)}\n    regions: [{', '.join(regions)}]"
        for i, a in enumerate(accounts)
    )
    path = work / f"snapworker-{parallel}.yaml"
    path.write_text(
        SNAPWORKER_CONFIG.format(
            db=work / "state.db",
            region=regions[0],
            parallel=parallel,
            targets=targets,
            policy=POLICY_NAME,
            share=SHARE,
        )
    )
    return path


def fleet_supported(env: dict[str, str], work: Path, cfg: Path) -> str | None:
    """None if this snapworker works a ``targets:`` config over its pairs, else why not."""
    sw = [sys.executable, "-m", "snapworker"]
    r = subprocess.run([*sw, "plan", "--help"], env=env, cwd=work, capture_output=True, text=True)
    if "--target" not in r.stdout:
        return "`snapworker plan` has no --target option (the fleet code is not here)"
    r = subprocess.run(
        [*sw, "validate", "-c", str(cfg)], env=env, cwd=work, capture_output=True, text=True
    )
    if r.returncode != 0:
        return f"`snapworker validate` refuses a `targets:` config: {(r.stdout + r.stderr)[-500:]}"
    return None


def plan_json(out: str) -> dict[str, Any]:
    data = json.loads(out)
    if "errors" not in data:
        raise SystemExit(
            "snapworker's plan JSON has no `errors` (the fleet's plan format): "
            "this snapworker does not work the config's `targets:`"
        )
    return data


def per_pair_calls(
    by_pair: dict[tuple[str, str], Counter[str]] | None,
    total: Counter[str],
    pairs: int,
    floor: int,
) -> str:
    listing = ("DescribeClusters", "DescribeClusterSnapshots")
    if by_pair is None:
        n = sum(total[op] for op in listing) / pairs
        return f"{n:.2f} listing calls per pair on average (floor {floor}; no per-pair counts here)"
    counts = [sum(c[op] for op in listing) for c in by_pair.values()]
    missing = pairs - len(counts)
    counts += [0] * missing
    return (
        f"listing calls per pair: min {min(counts)}, median {statistics.median(counts):g}, "
        f"max {max(counts)}; floor {floor} (ratio {max(counts) / floor:.2f} at worst)"
    )


# -- c7n-org --------------------------------------------------------------------------------


def c7n_org() -> Path | None:
    exe = VENV / "bin" / "c7n-org"
    if exe.exists():
        return exe
    print(f"installing c7n and c7n-org into {VENV} ...", flush=True)
    try:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "c7n", "c7n-org"],
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as e:
        print(f"c7n-org could not be installed here ({e}); snapworker only.")
        return None
    return exe if exe.exists() else None


def write_c7n_files(work: Path, accounts: list[str], regions: list[str]) -> tuple[Path, Path]:
    lines = ["accounts:"]
    for i, a in enumerate(accounts):
        lines += [
            f'  - account_id: "{a}"',
            f"    name: acct-{i:03d}",
            f"    role: {role_arn(a)}",
            f"    regions: [{', '.join(regions)}]",
        ]
    acc = work / "accounts.yml"
    acc.write_text("\n".join(lines) + "\n")
    pol = work / "policy.yml"
    pol.write_text(C7N_POLICY)
    return acc, pol


def c7n_matched(out: Path) -> tuple[int, int]:
    """(resources matched, policy runs that wrote a resources.json) under c7n-org's output."""
    matched = runs = 0
    for res in out.rglob("resources.json"):
        runs += 1
        matched += len(json.loads(res.read_text()))
    return matched, runs


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--regions", default=REGIONS)
    ap.add_argument("--clusters", type=int, default=5, help="clusters per pair")
    ap.add_argument("--snapshots", type=int, default=20, help="snapshots per cluster")
    ap.add_argument("--skip-c7n", action="store_true")
    ap.add_argument("--skip-snapworker", action="store_true")
    ap.add_argument("--skip-plans", action="store_true", help="only the runs (no c7n-org)")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        a, regions, c, s = args.serve.split(",")
        serve_fleet(int(a), regions.split("+"), int(c), int(s))
        return 0

    accounts = account_ids(args.accounts)
    regions = args.regions.split(",")
    exe = None if args.skip_c7n else c7n_org()
    proc, url, total_snaps = start_server(args)
    pairs = len(accounts) * len(regions)
    floor = math.ceil(args.clusters / 100) + math.ceil(total_snaps / pairs / 100)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            bench = Bench(work, base_env(work, url), url, accounts, regions, floor)
            if not args.skip_snapworker:
                bench.check_fleet()
                bench.warm_up(c7n=None if args.skip_plans else exe)
                if not args.skip_plans:
                    bench.plans()
                    if exe is not None:
                        bench.c7n(exe)
                bench.runs()
            elif exe is not None:
                bench.warm_up(c7n=exe, snapworker=False)
                bench.c7n(exe)
            bench.ratios()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=120)
    return 0


class Bench:
    """The commands, in one order: warm-ups, plan 8, c7n-org, plan 1, the converging runs
    (the first that mutates nothing is the no-op run with 8), the no-op run with 1."""

    def __init__(
        self,
        work: Path,
        env: dict[str, str],
        url: str,
        accounts: list[str],
        regions: list[str],
        floor: int,
    ) -> None:
        self.work, self.env, self.url = work, env, url
        self.accounts, self.regions, self.floor = accounts, regions, floor
        self.pairs = len(accounts) * len(regions)
        self.cfg8 = write_snapworker_config(work, accounts, regions, 8)
        self.cfg1 = write_snapworker_config(work, accounts, regions, 1)
        self.sw = [sys.executable, "-m", "snapworker"]
        self.figures: dict[str, float] = {}

    def check_fleet(self) -> None:
        why = fleet_supported(self.env, self.work, self.cfg8)
        if why is not None:
            raise SystemExit(f"snapworker cannot be benchmarked as a fleet here: {why}.")

    def c7n_cmd(self, exe: Path, *extra: str) -> list[str]:
        acc, pol = write_c7n_files(self.work, self.accounts, self.regions)
        (self.work / "c7n-cache").mkdir(exist_ok=True)
        # No resource cache: c7n-org's default keeps listings 15 minutes in ~/.cache/c7n-org,
        # so a timed run after the warm-up would list nothing.
        return [
            *(str(exe), "run", "--dryrun", "-c", str(acc), "-u", str(pol)),
            *("-s", str(self.work / "c7n-out"), "--cache-period", "0"),
            *("--cache-path", str(self.work / "c7n-cache"), *extra),
        ]

    def warm_up(self, c7n: Path | None, snapworker: bool = True) -> None:
        """One target's pairs each: the state DB's schema, the byte-code caches, c7n's first
        import of its resource maps."""
        if snapworker:
            plan = [*self.sw, "plan", "-c", str(self.cfg8), "--format", "json"]
            data = plan_json(measured([*plan, "--target", "acct-000"], self.env, self.work).out)
            if data["errors"]:
                raise SystemExit(f"the plan names pair errors: {data['errors'][:3]}")
        if c7n is not None:
            measured(self.c7n_cmd(c7n, "-a", "acct-000"), self.env, self.work)

    def plans(self) -> None:
        plan8 = [*self.sw, "plan", "-c", str(self.cfg8), "--format", "json"]
        plan1 = [*self.sw, "plan", "-c", str(self.cfg1), "--format", "json"]
        reset_calls(self.url)
        r8 = measured(plan8, self.env, self.work)
        calls = server_calls(self.url)
        data = plan_json(r8.out)
        if data["errors"]:
            raise SystemExit(f"the plan names pair errors: {data['errors'][:3]}")
        kinds = dict(Counter(a["action"] for a in data["actions"]))
        pairs_seen = len({(a["account"], a["region"]) for a in data["actions"]})
        print(
            f"snapworker plan: {len(data['actions'])} actions in {pairs_seen} of "
            f"{self.pairs} pairs {kinds}"
        )
        print(f"  plan, 8 pairs at once:         {r8.wall:7.2f} s, peak RSS {r8.rss_mb:.0f} MB")
        print(f"  {per_pair_calls(calls[1], calls[0], self.pairs, self.floor)}")
        self.figures["plan8"] = r8.wall
        r1 = measured(plan1, self.env, self.work)
        print(f"  plan, 1 pair at a time:        {r1.wall:7.2f} s, peak RSS {r1.rss_mb:.0f} MB")
        print(f"  speed-up 8 / 1:                {r1.wall / r8.wall:7.2f}x")
        self.figures["plan1"] = r1.wall

    def runs(self) -> None:
        """Converge with 8 pairs at once; a run that fails (a pair error is exit 1, anything
        else 2) is reported, and the fleet converges one pair at a time instead, so that the
        no-op runs are still measured."""
        run8 = [*self.sw, "run", "-c", str(self.cfg8)]
        run1 = [*self.sw, "run", "-c", str(self.cfg1)]
        converge, width = run8, 8
        for i in range(1, 7):
            reset_calls(self.url)
            r = measured(converge, self.env, self.work, ok=(0, 1, 2))
            total, by_pair = server_calls(self.url)
            mutations = {k: v for k, v in total.items() if not k.startswith("Describe")}
            head = f"  run {i}, {width} pair(s) at once"
            if r.code != 0:
                why = (r.err.strip().splitlines() or ["?"])[-1]
                print(f"{head}: FAILED (exit {r.code}) after {r.wall:.2f} s: {why[:300]}")
                print(f"    calls made: {mutations}")
                converge, width = run1, 1
                continue
            if mutations:
                print(
                    f"{head} (converging): {r.wall:7.2f} s, peak RSS {r.rss_mb:.0f} MB, {mutations}"
                )
                continue
            print(f"{head}: nothing to do: {r.wall:7.2f} s, peak RSS {r.rss_mb:.0f} MB")
            print(f"  {per_pair_calls(by_pair, total, self.pairs, self.floor)}")
            self.figures[f"noop{width}"] = r.wall
            break
        else:
            raise SystemExit("the fleet did not converge in 6 runs")
        for name, cmd, w in (("noop8", run8, 8), ("noop1", run1, 1)):
            if name in self.figures:
                continue
            reset_calls(self.url)
            r = measured(cmd, self.env, self.work, ok=(0, 1, 2))
            total, by_pair = server_calls(self.url)
            mutations = {k: v for k, v in total.items() if not k.startswith("Describe")}
            if r.code != 0:
                why = (r.err.strip().splitlines() or ["?"])[-1]
                print(f"  no-op run, {w} pair(s) at once: FAILED (exit {r.code}): {why[:300]}")
                continue
            if mutations:
                raise SystemExit(f"the no-op run mutated: {mutations}")
            print(f"  no-op run, {w} pair(s) at once: {r.wall:7.2f} s, peak RSS {r.rss_mb:.0f} MB")
            print(f"  {per_pair_calls(by_pair, total, self.pairs, self.floor)}")
            self.figures[name] = r.wall
        if "noop8" in self.figures and "noop1" in self.figures:
            speed = self.figures["noop1"] / self.figures["noop8"]
            print(f"  no-op run speed-up 8 / 1:      {speed:7.2f}x")

    def c7n(self, exe: Path) -> None:
        shutil.rmtree(self.work / "c7n-out", ignore_errors=True)
        r = measured(self.c7n_cmd(exe), self.env, self.work)
        matched, runs = c7n_matched(self.work / "c7n-out")
        print(
            f"c7n-org run --dryrun:            {r.wall:7.2f} s, peak RSS {r.rss_mb:.0f} MB "
            f"(its largest process); {runs} account/region runs, {matched} snapshots "
            "older than 35 days"
        )
        self.figures["c7n"] = r.wall

    def ratios(self) -> None:
        f = self.figures
        if "plan8" in f and "c7n" in f:
            ratio = f["plan8"] / f["c7n"]
            verdict = "met" if ratio <= 0.5 else "NOT met"
            print(f"ratio snapworker plan / c7n-org run --dryrun: {ratio:.2f} (<= 0.5: {verdict})")
        if "noop8" in f and "c7n" in f:
            print(f"ratio snapworker no-op run / c7n-org run --dryrun: {f['noop8'] / f['c7n']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
