"""The sizes of a plan's owned snapshots, totalled for the account, per policy and per
(policy, cluster): pure sums over what AWS reported (``Snapshot.size_mb``/``incremental_mb``,
gathered by the planner into ``Plan.sizes``). ``views.sizes`` says what they mean and
renders them; ``run`` records :func:`kept_by_policy` for ``status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapworker.core.model import Plan, Sizes


def cost(mb: float, price: float) -> float:
    """What *mb* costs a month at *price* per GB-month, in the price's currency."""
    return round(mb / 1024 * price, 2)


@dataclass
class Totals:
    """Sums over a set of owned snapshots (each counted once)."""

    snapshots: int = 0
    sized: int = 0  # of them, how many AWS reported a size for
    size_mb: float = 0.0
    incremental_mb: float = 0.0
    deletes: int = 0
    frees_mb: float = 0.0  # the incremental sizes of the ones deleted
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, sid: str, sizes: Sizes | None, deleted: bool) -> None:
        if sid in self._seen:
            return
        self._seen.add(sid)
        self.snapshots += 1
        self.deletes += deleted
        if sizes is None:
            return
        self.sized += 1
        self.size_mb += sizes.total or 0.0
        self.incremental_mb += sizes.incremental or 0.0
        if deleted:
            self.frees_mb += sizes.incremental or 0.0

    def to_json(self, price: float | None) -> dict[str, Any]:
        known = self.sized > 0
        d: dict[str, Any] = {
            "snapshots": self.snapshots,
            "sized": self.sized,
            "size_mb": round(self.size_mb, 1) if known else None,
            "incremental_mb": round(self.incremental_mb, 1) if known else None,
            "deletes": self.deletes,
            "frees_mb": round(self.frees_mb, 1) if known else None,
        }
        if price is not None and known:
            d["cost_per_month"] = cost(self.incremental_mb, price)
            d["frees_per_month"] = cost(self.frees_mb, price)
        return d


@dataclass
class PlanSizes:
    """A plan's totals: for the account, per policy, per (policy, cluster)."""

    account: Totals
    policies: dict[str, Totals]
    clusters: dict[tuple[str, str], Totals]


def totals(plan: Plan) -> PlanSizes:
    """Every owned snapshot the plan keeps or acts on (not the ones it creates or copies:
    they do not exist yet), each once per policy and cluster."""
    out = PlanSizes(Totals(), {}, {})
    deleted = {a.snapshot for a in plan.actions if a.kind == "delete"}
    entries: list[tuple[str, str, str]] = [(k.policy, k.cluster, k.snapshot) for k in plan.kept]
    entries += [
        (a.policy, a.cluster, a.snapshot)
        for a in plan.actions
        if a.kind not in ("create", "copy", "verify")
    ]
    for policy, cluster, sid in entries:
        sizes = plan.sizes.get(sid)
        gone = sid in deleted
        out.account.add(sid, sizes, gone)
        out.policies.setdefault(policy, Totals()).add(sid, sizes, gone)
        out.clusters.setdefault((policy, cluster), Totals()).add(sid, sizes, gone)
    return out


def kept_by_policy(plan: Plan) -> dict[str, Totals]:
    """Per policy, the owned snapshots the plan keeps (what stays after its deletions)."""
    out: dict[str, Totals] = {}
    for k in plan.kept:
        out.setdefault(k.policy, Totals()).add(k.snapshot, plan.sizes.get(k.snapshot), False)
    return out
