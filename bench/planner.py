"""Planner time for 10,000 and 100,000 snapshots over 1,000 clusters, and how it grows.

The estate (``bench/_estate.py``): per cluster, one snapshot every 9 hours, the newest an
automated snapshot to copy, two more automated ones already copied, every older one an owned
copy shared with one account; the policy (``max_age_days 35``, ``keep_last 3``, a daily
schedule) copies, creates, keeps, and revokes then deletes what is past 35 days. The state
DB knows every copy. Each figure is the median of ``--repeat`` cold plans (the id-check
memo cleared before each), as a `plan` or `run` pays it (the planner pauses the cyclic
garbage collector itself while it works).

The baseline is the 10,000-snapshot plan measured in the same run: the growth ratio
100k/10k would be ~10 for a linear planner (~13 for n log n), ~100 for a quadratic one.
Usage: ``.venv/bin/python bench/planner.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._estate import ACCOUNT, NOW, plain, policy_data
from snapworker.config import Policy
from snapworker.core import ownership, planner


def measure(snapshots: int, repeat: int) -> tuple[float, float, Counter[str], int]:
    """Median wall and CPU seconds of a cold plan, its actions by kind, its kept count."""
    pol = Policy.model_validate(policy_data())
    inv, state = plain(1000, snapshots)
    walls, cpus = [], []
    plan = None
    for _ in range(repeat):
        ownership._copy_id.cache_clear()
        ownership._create_id.cache_clear()
        w, c = time.perf_counter(), time.process_time()
        plan = planner.plan([pol.core], inv, state, NOW, account=ACCOUNT)
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    assert plan is not None
    return (
        statistics.median(walls),
        statistics.median(cpus),
        Counter(a.kind for a in plan.actions),
        len(plan.kept),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    results = {}
    for n in (10_000, 100_000):
        wall, cpu, kinds, kept = measure(n, args.repeat)
        results[n] = (wall, cpu)
        acts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        print(
            f"{n:>7} snapshots / 1000 clusters: {wall:.3f} s wall, {cpu:.3f} s CPU "
            f"({cpu / n * 1e6:.1f} us/snapshot); {acts}; kept {kept}"
        )
    grow = results[100_000][1] / results[10_000][1]
    print(f"growth 100k/10k (CPU): {grow:.1f}x for 10x the snapshots (linear ~10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
