"""What the owned snapshots of a plan occupy, and what its deletions free: the sizes AWS
reports (``TotalBackupSizeInMegaBytes``, ``ActualIncrementalBackupSizeInMegaBytes``), totalled
per cluster, per policy and for the account, for every report (JSON, table, HTML, status).

Snapshots of a cluster share blocks. A snapshot's total size counts every block it can
restore, most of them shared with its neighbours, so a sum of total sizes overstates what the
snapshots occupy; its incremental size is what it adds over the snapshot before it, so deleting
it frees about that much, and the sum of incremental sizes is about what they occupy. So the
"frees" figure and the monthly cost are sums of incremental sizes (:data:`MEANING`).

A money figure appears only with ``report.price_per_gb_month``, in that price's currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from snapworker.core.model import Plan, Sizes
from snapworker.core.sizes import Totals, cost, totals

MEANING = (
    "snapshots share blocks: deleting one frees about its incremental size "
    "(ActualIncrementalBackupSizeInMegaBytes); a sum of total sizes "
    "(TotalBackupSizeInMegaBytes) overstates what they occupy, a sum of incremental sizes "
    "is about what they occupy"
)
COST_MEANING = (
    "monthly cost = incremental MB / 1024 x report.price_per_gb_month, in that price's currency"
)


def plus(a: Totals, b: Totals) -> Totals:
    """Two disjoint sets' totals together (two pairs: the same snapshot id in two accounts
    or regions names two snapshots, so nothing is counted twice)."""
    return Totals(
        a.snapshots + b.snapshots,
        a.sized + b.sized,
        a.size_mb + b.size_mb,
        a.incremental_mb + b.incremental_mb,
        a.deletes + b.deletes,
        a.frees_mb + b.frees_mb,
    )


def sizes_json(
    plans: Sequence[tuple[Mapping[str, Any], Plan]], price: float | None = None
) -> dict[str, Any]:
    """The plan JSON's ``sizes`` key, over the plans of every pair (each with its
    ``{"target", "account", "region"}``): ``total`` over all, ``accounts`` per owner
    account, ``targets`` per pair, then ``policies`` and ``clusters`` per pair."""
    d: dict[str, Any] = {"meaning": MEANING}
    if price is not None:
        d["price_per_gb_month"] = price
        d["cost_meaning"] = COST_MEANING
    every = Totals()
    accounts: dict[str | None, Totals] = {}
    targets: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    for at, plan in plans:
        t = totals(plan)
        every = plus(every, t.account)
        accounts[at["account"]] = plus(accounts.get(at["account"], Totals()), t.account)
        targets.append({**at, **t.account.to_json(price)})
        policies += [{**at, "policy": p, **v.to_json(price)} for p, v in sorted(t.policies.items())]
        clusters += [
            {**at, "policy": p, "cluster": c, **v.to_json(price)}
            for (p, c), v in sorted(t.clusters.items())
        ]
    d["total"] = every.to_json(price)
    d["accounts"] = [{"account": a, **v.to_json(price)} for a, v in accounts.items()]
    d["targets"] = targets
    d["policies"] = policies
    d["clusters"] = clusters
    return d


def with_sizes(entry: dict[str, Any], sizes: Sizes | None) -> dict[str, Any]:
    """A plan JSON entry with its snapshot's ``size_mb``/``incremental_mb``, when known."""
    if sizes is not None:
        if sizes.total is not None:
            entry["size_mb"] = sizes.total
        if sizes.incremental is not None:
            entry["incremental_mb"] = sizes.incremental
    return entry


def human(mb: float | None) -> str:
    """``812 MB``, ``12.3 GB``, ``1.42 TB``; ``-`` for unknown."""
    if mb is None:
        return "-"
    if mb < 1024:
        return f"{mb:.0f} MB"
    if mb < 1024 * 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb / 1024 / 1024:.2f} TB"


def size_cell(sizes: Sizes | None) -> str:
    """One snapshot's sizes for a person: ``12.3 GB (+1.1 GB)`` (total, incremental)."""
    if sizes is None:
        return ""
    inc = f" (+{human(sizes.incremental)})" if sizes.incremental is not None else ""
    return f"{human(sizes.total)}{inc}"


def totals_line(t: Totals, price: float | None, *, what: str = "total") -> str:
    """``total: 7 snapshots, 12.3 GB incremental (84.0 GB total sizes); deleting 2 frees
    about 1.1 GB`` (and the monthly cost with a price)."""
    n = f"{t.snapshots} snapshot{'s' if t.snapshots != 1 else ''}"
    if not t.sized:
        return f"{what}: {n}, sizes not reported"
    unknown = f", {t.snapshots - t.sized} without a size" if t.sized < t.snapshots else ""
    text = (
        f"{what}: {n}{unknown}, about {human(t.incremental_mb)} stored "
        f"({human(t.size_mb)} in total sizes)"
    )
    if price is not None:
        text += f", {cost(t.incremental_mb, price):.2f} per month"
    if t.deletes:
        text += f"; deleting {t.deletes} frees about {human(t.frees_mb)}"
        if price is not None:
            text += f" ({cost(t.frees_mb, price):.2f} per month)"
    return text
