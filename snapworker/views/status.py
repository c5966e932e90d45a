"""``snapworker status``: what the state DB holds, for a person (table) or a script (json)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from snapworker.adapters.store.repository import StateStore


def _t(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if t else "-"


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def status_dict(store: StateStore, runs: int = 10) -> dict[str, Any]:
    summary = store.owned_summary()
    owned = []
    for policy, clusters in summary.owned.items():
        for cluster, views in clusters.items():
            for v in views:
                owned.append(
                    {
                        "policy": policy,
                        "cluster": cluster,
                        "snapshot": v.snapshot_id,
                        "made_for": v.made_for,
                        "source": v.source_id,
                        "data_time": _iso(v.data_time),
                        "adopted": v.adopted,
                        "deleted_at": _iso(v.deleted_at),
                    }
                )
    grants = [
        {"snapshot": g.snapshot_id, "account": g.account, "granted_at": _iso(g.granted_at)}
        for g in summary.open_grants
    ]
    recent = []
    for r in store.recent_runs(runs):
        recent.append(
            {
                "id": r.id,
                "mode": r.mode,
                "status": r.status,
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "actions_ok": r.actions_ok,
                "actions_failed": r.actions_failed,
                "api_calls": dict(r.api_calls),
                "error": r.error,
                "failures": [
                    {
                        "action": f.kind,
                        "snapshot": f.snapshot_id,
                        "account": f.account,
                        "error": f.error,
                    }
                    for f in r.failures
                ],
            }
        )
    seen = store.latest_drift()
    drift = None
    if seen is not None:
        drift = {
            "run_id": seen.run_id,
            "seen_at": _iso(seen.seen_at),
            "grants": [
                {
                    "policy": d.policy,
                    "cluster": d.cluster,
                    "snapshot": d.snapshot_id,
                    "account": d.account,
                    "revoked": d.revoked,
                }
                for d in seen.items
            ],
        }
    return {
        "owned": owned,
        "open_grants": grants,
        "drift": drift,
        "verifications": _verifications(store),
        "runs": recent,
    }


def _verifications(store: StateStore) -> list[dict[str, Any]]:
    """Each snapshot's last restore drill (newest first), with its failed checks or error."""
    latest: dict[str, Any] = {}
    for v in store.verifications(limit=500):
        if v.snapshot_id in latest or v.status == "interrupted":
            continue
        checks = v.detail.get("checks") or []
        latest[v.snapshot_id] = {
            "policy": v.policy,
            "cluster": v.cluster,
            "snapshot": v.snapshot_id,
            "fire_time": _iso(v.fire_time),
            "status": v.status,
            "started_at": _iso(v.started_at),
            "finished_at": _iso(v.finished_at),
            "scratch_cluster": v.scratch_cluster,
            "scratch_deleted": v.scratch_deleted_at is not None,
            "checks_passed": sum(1 for c in checks if c.get("ok")),
            "checks": len(checks),
            "failed_checks": [c for c in checks if not c.get("ok")],
            "error": v.detail.get("error"),
        }
    return list(latest.values())


def render_status(store: StateStore, fmt: str = "table") -> str:
    data = status_dict(store)
    if fmt == "json":
        return json.dumps(data, indent=2)
    live = [o for o in data["owned"] if not o["deleted_at"]]
    deleted = len(data["owned"]) - len(live)
    adopted = sum(1 for o in live if o["adopted"])
    adopted_text = f" ({adopted} adopted from their tags)" if adopted else ""
    out = [f"Owned snapshots: {len(live)} live{adopted_text}, {deleted} deleted by snapworker"]
    per: Counter[tuple[str, str]] = Counter((o["policy"], o["cluster"]) for o in live)
    for (policy, cluster), n in sorted(per.items()):
        newest = max(
            (o["data_time"] or "") for o in live if (o["policy"], o["cluster"]) == (policy, cluster)
        )
        out.append(f"  {policy:<20} {cluster:<24} {n:>4} owned, newest data {newest or '-'}")
    out.append(f"\nOpen grants: {len(data['open_grants'])}")
    for g in data["open_grants"][:20]:
        out.append(f"  {g['snapshot']} -> {g['account']} (since {g['granted_at'] or 'unknown'})")
    drift = data["drift"]
    if drift is None:
        out.append("\nDrift: not checked yet (no run so far)")
    else:
        where = f"run #{drift['run_id']} at {drift['seen_at']}"
        out.append(
            f"\nDrift (grants to accounts no policy lists), as seen by {where}: "
            f"{len(drift['grants'])}"
        )
        for d in drift["grants"]:
            what = "revoked (revoke_unlisted)" if d["revoked"] else "reported, not revoked"
            out.append(f"  {d['policy']}/{d['cluster']}: {d['snapshot']} -> {d['account']}: {what}")
    out.append(f"\nRestore verification (last drill per snapshot): {len(data['verifications'])}")
    for v in data["verifications"][:20]:
        when = v["finished_at"] or v["started_at"]
        out.append(
            f"  {v['policy']}/{v['cluster']}: {v['snapshot']}: {v['status'].upper()} at {when} "
            f"(fire time {v['fire_time']}; {v['checks_passed']}/{v['checks']} checks passed)"
        )
        for c in v["failed_checks"]:
            out.append(
                f"         FAILED check {c['name']}: expected {c['expected']}, "
                f"got {c['observed']!r} {c.get('detail') or ''}".rstrip()
            )
        if v["error"]:
            out.append(f"         error: {v['error']}")
        if not v["scratch_deleted"] and v["status"] != "pending":
            out.append(f"         scratch cluster {v['scratch_cluster']} not deleted yet")
    out.append("\nRecent runs:")
    if not data["runs"]:
        out.append("  none yet")
    for r in data["runs"]:
        calls = sum(r["api_calls"].values())
        out.append(
            f"  #{r['id']:<5} {r['mode']:<6} {r['status']:<8} {r['started_at']}  "
            f"{r['actions_ok']} ok, {r['actions_failed']} failed, {calls} AWS calls"
        )
        if calls:
            # By operation, so a run's cost can be read against the call floor (README).
            by_op = ", ".join(f"{op} {n}" for op, n in sorted(r["api_calls"].items()))
            out.append(f"         calls: {by_op}")
        if r["error"]:
            out.append(f"         error: {r['error']}")
        for f in r["failures"]:
            acc = f" {f['account']}" if f["account"] else ""
            out.append(f"         FAILED {f['action']} {f['snapshot']}{acc}: {f['error']}")
    return "\n".join(out)
