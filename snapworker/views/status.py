"""``snapworker status``: what the state DB holds, for a person (table), a script (json) or a
ticket or wiki page (markdown).

The view reads the state DB through :class:`StatusSource`, the four queries it needs, rather
than the store's class: views sit beside the adapters, not above them (docs/design.md,
"Layout"), and any store with these queries can be shown.

Split by target and region: every JSON entry starts with ``target``, ``account`` (the
pair's owner account) and ``region``, as the state DB's rows carry them (``None``, ``""``,
``""`` for a store that does not know them yet), and another account a snapshot is shared
with is its ``grantee``. The table groups the owned snapshots under a ``target NAME
(ACCOUNT, REGION)`` heading and, when the DB holds more than one pair, names the pair
(``TARGET/REGION``) on every line of the other sections. The pairs whose last run failed
come first: ``error: TARGET/REGION: ERROR`` (``errors`` in the JSON).

Long lists (open grants, restore drills) show their first :data:`LIMIT` entries and then say
how many more there are; ``status --all`` (``show_all``) lists every one. The JSON always
holds every entry.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from snapworker.core.model import DELETED_OUTSIDE
from snapworker.core.sizes import Totals
from snapworker.core.targets import matches
from snapworker.views.formatting import iso, md_cell, md_table
from snapworker.views.sizes import MEANING, totals_line

LIMIT = 20
"""Entries of a long list shown without ``--all``."""


class StatusSource(Protocol):
    """The state DB queries the status reads (``adapters.store`` answers them). The records
    are read by attribute, as the store returns them."""

    def owned_summary(self) -> Any: ...

    def recent_runs(self, limit: int = 10) -> Any: ...

    def latest_drift(self) -> Any: ...

    def verifications(self, limit: int | None = None) -> Any: ...

    def latest_sizes(self) -> Any: ...

    # Optional (read when the store has it): the newest finished run of each pair, with
    # its ``target``, ``owner_account``, ``region``, ``status``, ``error``, ``id`` and
    # ``finished_at``; the pairs whose last run failed are listed first.
    # def pair_runs(self) -> Any: ...


def where(v: Any) -> dict[str, Any]:
    """A state DB record's ``target``, ``account`` (the owner account: ``owner_account``,
    as grants and the journal name their grantee ``account``) and ``region``."""
    return {
        "target": getattr(v, "target", None),
        "account": getattr(v, "owner_account", None) or "",
        "region": getattr(v, "region", None) or "",
    }


def _key(d: dict[str, Any]) -> str:
    """``TARGET/REGION`` of an entry (``-`` for a target not known)."""
    return f"{d['target'] or '-'}/{d['region'] or '-'}"


FAILED_RUN = ("failed", "error", "interrupted")
"""A pair's last run in one of these states is listed under the errors."""


def _errors(store: StatusSource) -> list[dict[str, Any]]:
    """The pairs whose last run failed (the store's per-pair read; none without it)."""
    read = getattr(store, "pair_runs", None)
    if read is None:
        return []
    out = []
    for r in read():
        if r.status in FAILED_RUN or r.error:
            out.append(
                {
                    **where(r),
                    "run_id": r.id,
                    "status": r.status,
                    "finished_at": iso(r.finished_at),
                    "error": r.error or r.status,
                }
            )
    return out


def status_dict(store: StatusSource, runs: int = 10) -> dict[str, Any]:
    summary = store.owned_summary()
    owned = []
    for policy, clusters in summary.owned.items():
        for cluster, views in clusters.items():
            for v in views:
                owned.append(
                    {
                        **where(v),
                        "policy": policy,
                        "cluster": cluster,
                        "snapshot": v.snapshot_id,
                        "made_for": v.made_for,
                        "source": v.source_id,
                        "data_time": iso(v.data_time),
                        "adopted": v.adopted,
                        "deleted_at": iso(v.deleted_at),
                        "deleted_reason": v.deleted_reason,
                    }
                )
    grants = [
        {
            **where(g),
            "snapshot": g.snapshot_id,
            "grantee": g.account,
            "granted_at": iso(g.granted_at),
        }
        for g in summary.open_grants
    ]
    # Changed outside snapworker, as a complete listing of a run first missed it.
    deleted_outside = [
        {
            "target": o["target"],
            "account": o["account"],
            "region": o["region"],
            "policy": o["policy"],
            "cluster": o["cluster"],
            "snapshot": o["snapshot"],
            "first_missed": o["deleted_at"],
        }
        for o in owned
        if o["deleted_reason"] == DELETED_OUTSIDE
    ]
    revoked_outside = [
        {
            **where(g),
            "snapshot": g.snapshot_id,
            "grantee": g.account,
            "granted_at": iso(g.granted_at),
            "first_missed": iso(g.revoked_at),
        }
        for g in getattr(summary, "revoked_outside", ())
    ]
    recent = []
    for r in store.recent_runs(runs):
        recent.append(
            {
                **where(r),
                "id": r.id,
                "mode": r.mode,
                "status": r.status,
                "started_at": iso(r.started_at),
                "finished_at": iso(r.finished_at),
                "actions_ok": r.actions_ok,
                "actions_failed": r.actions_failed,
                "api_calls": dict(r.api_calls),
                "error": r.error,
                "failures": [
                    {
                        "action": f.kind,
                        "snapshot": f.snapshot_id,
                        "grantee": f.account,
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
            "seen_at": iso(seen.seen_at),
            "grants": [
                {
                    **where(d),
                    "policy": d.policy,
                    "cluster": d.cluster,
                    "snapshot": d.snapshot_id,
                    "grantee": d.account,
                    "revoked": d.revoked,
                }
                for d in seen.items
            ],
        }
    return {
        "errors": _errors(store),
        "owned": owned,
        "open_grants": grants,
        "deleted_outside": deleted_outside,
        "grants_revoked_outside": revoked_outside,
        "drift": drift,
        "verifications": _verifications(store),
        "runs": recent,
        "sizes": _sizes(store),
    }


def _sizes(store: StatusSource) -> dict[str, Any] | None:
    """Per policy, what its kept snapshots occupy, as the last run saw them (None: no run)."""
    seen = store.latest_sizes()
    if seen is None:
        return None
    return {
        "run_id": seen.run_id,
        "seen_at": iso(seen.seen_at),
        "meaning": MEANING,
        "policies": [
            {
                **where(i),
                "policy": i.policy,
                "snapshots": i.snapshots,
                "sized": i.sized,
                "size_mb": i.size_mb,
                "incremental_mb": i.incremental_mb,
            }
            for i in seen.items
        ],
    }


def _size_lines(data: dict[str, Any], price: float | None) -> list[str]:
    """The table's (and Markdown's) lines of sizes per policy; money only with a price."""
    sizes = data.get("sizes")
    if not sizes or not sizes["policies"]:
        return []
    out = [f"Sizes of the kept snapshots, as seen by run #{sizes['run_id']} at {sizes['seen_at']}:"]
    for p in sizes["policies"]:
        t = Totals(p["snapshots"], p["sized"], p["size_mb"] or 0.0, p["incremental_mb"] or 0.0)
        out.append(f"  {_at(data, p)}{p['policy']:<20} {totals_line(t, price)}")
    out.append(f"  ({MEANING})")
    if price is not None:
        out.append("  (money figures are in the currency of report.price_per_gb_month)")
    return out


def _verifications(store: StatusSource) -> list[dict[str, Any]]:
    """Each snapshot's last restore drill (newest first), with its failed checks or error."""
    latest: dict[tuple[str, str, str], Any] = {}
    for v in store.verifications(limit=500):
        key = (where(v)["account"], where(v)["region"], v.snapshot_id)
        if key in latest or v.status == "interrupted":
            continue
        checks = v.detail.get("checks") or []
        at = where(v)
        latest[(at["account"], at["region"], v.snapshot_id)] = {
            **at,
            "policy": v.policy,
            "cluster": v.cluster,
            "snapshot": v.snapshot_id,
            "fire_time": iso(v.fire_time),
            "status": v.status,
            "started_at": iso(v.started_at),
            "finished_at": iso(v.finished_at),
            "scratch_cluster": v.scratch_cluster,
            "scratch_deleted": v.scratch_deleted_at is not None,
            "checks_passed": sum(1 for c in checks if c.get("ok")),
            "checks": len(checks),
            "failed_checks": [c for c in checks if not c.get("ok")],
            "error": v.detail.get("error"),
        }
    return list(latest.values())


def render_status(
    store: StatusSource,
    fmt: str = "table",
    show_all: bool = False,
    price: float | None = None,
    targets: Sequence[str] | None = None,
) -> str:
    """The status as ``table``, ``json`` or ``markdown``; ``show_all`` lifts :data:`LIMIT`;
    ``price``: ``report.price_per_gb_month`` (a money figure only with it); ``targets``:
    ``--target`` globs (only those targets' entries)."""
    data = only_targets(status_dict(store), targets)
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "markdown":
        sizes = _size_lines(data, price)
        return _markdown(data, show_all) + (
            "\n".join(["## Sizes", "", *sizes, ""]) if sizes else ""
        )
    return _table(data, show_all, price)


def only_targets(data: dict[str, Any], globs: Sequence[str] | None) -> dict[str, Any]:
    """``data`` with only the entries of the targets ``globs`` match (every entry that
    names a target; an entry from before the fleet, with none, matches no glob)."""
    if not globs:
        return data

    def keep(value: Any) -> Any:
        if isinstance(value, list):
            return [
                keep(v)
                for v in value
                if not isinstance(v, dict)
                or "target" not in v
                or matches(str(v["target"] or ""), globs)
            ]
        if isinstance(value, dict):
            return {k: keep(v) for k, v in value.items()}
        return value

    return {k: keep(v) for k, v in data.items()}


def _shown(items: list[Any], show_all: bool) -> tuple[list[Any], str | None]:
    """The entries to list, and the line that says how many were left out (None: none)."""
    if show_all or len(items) <= LIMIT:
        return items, None
    return items[:LIMIT], f"... and {len(items) - LIMIT} more (use --all)"


def _live(data: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The owned snapshots not deleted, and the summary line of them."""
    live = [o for o in data["owned"] if not o["deleted_at"]]
    outside = len(data["deleted_outside"])
    deleted = len(data["owned"]) - len(live) - outside
    adopted = sum(1 for o in live if o["adopted"])
    adopted_text = f" ({adopted} adopted from their tags)" if adopted else ""
    outside_text = f", {outside} deleted outside snapworker" if outside else ""
    return live, f"{len(live)} live{adopted_text}, {deleted} deleted by snapworker{outside_text}"


def _outside_lines(data: dict[str, Any], show_all: bool) -> list[str]:
    """The table's sections of what was changed outside snapworker (none: no lines)."""
    out = []
    if data["deleted_outside"]:
        out.append(f"\nDeleted outside snapworker: {len(data['deleted_outside'])}")
        gone, more = _shown(data["deleted_outside"], show_all)
        for o in gone:
            out.append(
                f"  {_at(data, o)}{o['policy']}/{o['cluster']}: {o['snapshot']} (first missed "
                f"{o['first_missed']}; its grants closed)"
            )
        if more:
            out.append(f"  {more}")
    if data["grants_revoked_outside"]:
        out.append(f"\nGrants revoked outside snapworker: {len(data['grants_revoked_outside'])}")
        revoked, more = _shown(data["grants_revoked_outside"], show_all)
        for g in revoked:
            out.append(
                f"  {_at(data, g)}{g['snapshot']} -> {g['grantee']} "
                f"(first missed {g['first_missed']}; "
                f"granted {g['granted_at'] or 'unknown'})"
            )
        if more:
            out.append(f"  {more}")
    return out


def _pairs(data: dict[str, Any]) -> list[tuple[Any, str, str]]:
    """The (target, account, region) of every entry, in the order first met."""
    seen: dict[tuple[Any, str, str], None] = {}
    for section in ("owned", "open_grants", "verifications", "runs"):
        for d in data[section]:
            seen.setdefault((d["target"], d["account"], d["region"]), None)
    return list(seen)


def _at(data: dict[str, Any], d: dict[str, Any]) -> str:
    """``TARGET/REGION `` before a line when the DB holds more than one pair, else nothing."""
    return f"{_key(d)} " if len(_pairs(data)) > 1 else ""


def _heading(target: Any, account: str, region: str) -> str:
    """``target dr-a (210987654321, eu-west-1)``."""
    inside = ", ".join(x for x in (account, region) if x)
    return f"target {target or '-'}" + (f" ({inside})" if inside else "")


def _per_cluster(
    live: list[dict[str, Any]],
) -> list[tuple[tuple[Any, str, str], str, str, int, str]]:
    """(pair, policy, cluster, owned, newest data time) per cluster, by target, region,
    policy and cluster."""

    def k(o: dict[str, Any]) -> tuple[tuple[Any, str, str], str, str]:
        return ((o["target"], o["account"], o["region"]), o["policy"], o["cluster"])

    per: Counter[tuple[tuple[Any, str, str], str, str]] = Counter(k(o) for o in live)
    rows = []
    for (pair, policy, cluster), n in sorted(per.items(), key=lambda i: (str(i[0][0]), i[0][1:])):
        newest = max((o["data_time"] or "") for o in live if k(o) == (pair, policy, cluster))
        rows.append((pair, policy, cluster, n, newest or "-"))
    return rows


def _failed_check(c: dict[str, Any]) -> str:
    return (
        f"FAILED check {c['name']}: expected {c['expected']}, "
        f"got {c['observed']!r} {c.get('detail') or ''}".rstrip()
    )


def _table(data: dict[str, Any], show_all: bool, price: float | None = None) -> str:
    live, owned_line = _live(data)
    out = [f"error: {_key(e)}: {e['error']}" for e in data["errors"]]
    if out:
        out.append("")
    out.append(f"Owned snapshots: {owned_line}")
    current = None
    for pair, policy, cluster, n, newest in _per_cluster(live):
        if pair != current and (pair[0] is not None or len(_pairs(data)) > 1):
            out.append(f"  {_heading(*pair)}")
        current = pair
        out.append(f"  {policy:<20} {cluster:<24} {n:>4} owned, newest data {newest}")
    sizes = _size_lines(data, price)
    if sizes:
        out += ["", *sizes]
    out.append(f"\nOpen grants: {len(data['open_grants'])}")
    grants, more = _shown(data["open_grants"], show_all)
    for g in grants:
        out.append(
            f"  {_at(data, g)}{g['snapshot']} -> {g['grantee']} "
            f"(since {g['granted_at'] or 'unknown'})"
        )
    if more:
        out.append(f"  {more}")
    out += _outside_lines(data, show_all)
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
            out.append(
                f"  {_at(data, d)}{d['policy']}/{d['cluster']}: {d['snapshot']} -> "
                f"{d['grantee']}: {what}"
            )
    out.append(f"\nRestore verification (last drill per snapshot): {len(data['verifications'])}")
    drills, more = _shown(data["verifications"], show_all)
    for v in drills:
        when = v["finished_at"] or v["started_at"]
        out.append(
            f"  {_at(data, v)}{v['policy']}/{v['cluster']}: {v['snapshot']}: "
            f"{v['status'].upper()} at {when} "
            f"(fire time {v['fire_time']}; {v['checks_passed']}/{v['checks']} checks passed)"
        )
        for c in v["failed_checks"]:
            out.append(f"         {_failed_check(c)}")
        if v["error"]:
            out.append(f"         error: {v['error']}")
        if not v["scratch_deleted"] and v["status"] != "pending":
            out.append(f"         scratch cluster {v['scratch_cluster']} not deleted yet")
    if more:
        out.append(f"  {more}")
    out.append("\nRecent runs:")
    if not data["runs"]:
        out.append("  none yet")
    for r in data["runs"]:
        calls = sum(r["api_calls"].values())
        out.append(
            f"  #{r['id']:<5} {_at(data, r)}{r['mode']:<6} {r['status']:<11} {r['started_at']}  "
            f"{r['actions_ok']} ok, {r['actions_failed']} failed, {calls} AWS calls"
        )
        if calls:
            # By operation, so a run's cost can be read against the call floor (README).
            by_op = ", ".join(f"{op} {n}" for op, n in sorted(r["api_calls"].items()))
            out.append(f"         calls: {by_op}")
        if r["error"]:
            out.append(f"         error: {r['error']}")
        for f in r["failures"]:
            acc = f" {f['grantee']}" if f["grantee"] else ""
            out.append(f"         FAILED {f['action']} {f['snapshot']}{acc}: {f['error']}")
    return "\n".join(out)


def _markdown(data: dict[str, Any], show_all: bool) -> str:
    """The same content as the table, as Markdown: a heading per section, pipe tables."""
    live, owned_line = _live(data)
    out = ["# snapworker status", ""]
    if data["errors"]:
        out += ["## Errors", ""]
        out += [f"- `error: {_key(e)}: {md_cell(e['error'])}`" for e in data["errors"]]
        out.append("")
    out += ["## Owned snapshots", "", owned_line, ""]
    rows = [
        (_heading(*pair).removeprefix("target "), p, c, str(n), newest)
        for pair, p, c, n, newest in _per_cluster(live)
    ]
    if rows:
        out += [*md_table(("target", "policy", "cluster", "owned", "newest data"), rows), ""]
    out += [f"## Open grants: {len(data['open_grants'])}", ""]
    grants, more = _shown(data["open_grants"], show_all)
    if grants:
        out += md_table(
            ("target", "snapshot", "grantee", "since"),
            [(_key(g), g["snapshot"], g["grantee"], g["granted_at"] or "unknown") for g in grants],
        )
        out.append("")
    if more:
        out += [md_cell(more), ""]
    out += _outside_markdown(data, show_all)
    drift = data["drift"]
    if drift is None:
        out += ["## Drift", "", "Not checked yet (no run so far).", ""]
    else:
        out += [
            f"## Drift: {len(drift['grants'])}",
            "",
            f"Grants to accounts no policy lists, as seen by run #{drift['run_id']} "
            f"at {drift['seen_at']}.",
            "",
        ]
        if drift["grants"]:
            out += md_table(
                ("target", "policy", "cluster", "snapshot", "grantee", "what"),
                [
                    (
                        _key(d),
                        d["policy"],
                        d["cluster"],
                        d["snapshot"],
                        d["grantee"],
                        "revoked (revoke_unlisted)" if d["revoked"] else "reported, not revoked",
                    )
                    for d in drift["grants"]
                ],
            )
            out.append("")
    out += [f"## Restore verification: {len(data['verifications'])}", ""]
    out += ["The last drill per snapshot.", ""]
    drills, more = _shown(data["verifications"], show_all)
    if drills:
        out += md_table(
            (
                "target",
                "policy",
                "cluster",
                "snapshot",
                "result",
                "at",
                "fire time",
                "checks passed",
                "notes",
            ),
            [
                (
                    _key(v),
                    v["policy"],
                    v["cluster"],
                    v["snapshot"],
                    v["status"].upper(),
                    v["finished_at"] or v["started_at"],
                    v["fire_time"],
                    f"{v['checks_passed']}/{v['checks']}",
                    "; ".join(_drill_notes(v)),
                )
                for v in drills
            ],
        )
        out.append("")
    if more:
        out += [md_cell(more), ""]
    out += ["## Recent runs", ""]
    if not data["runs"]:
        out += ["None yet.", ""]
    else:
        out += md_table(
            ("run", "target", "mode", "status", "started", "ok", "failed", "AWS calls", "notes"),
            [
                (
                    f"#{r['id']}",
                    _key(r),
                    r["mode"],
                    r["status"],
                    r["started_at"],
                    str(r["actions_ok"]),
                    str(r["actions_failed"]),
                    ", ".join(f"{op} {n}" for op, n in sorted(r["api_calls"].items())) or "0",
                    "; ".join(_run_notes(r)),
                )
                for r in data["runs"]
            ],
        )
        out.append("")
    return "\n".join(out)


def _outside_markdown(data: dict[str, Any], show_all: bool) -> list[str]:
    out: list[str] = []
    if data["deleted_outside"]:
        gone, more = _shown(data["deleted_outside"], show_all)
        out += [f"## Deleted outside snapworker: {len(data['deleted_outside'])}", ""]
        out += md_table(
            ("target", "policy", "cluster", "snapshot", "first missed"),
            [(_key(o), o["policy"], o["cluster"], o["snapshot"], o["first_missed"]) for o in gone],
        )
        out.append("")
        if more:
            out += [md_cell(more), ""]
    if data["grants_revoked_outside"]:
        revoked, more = _shown(data["grants_revoked_outside"], show_all)
        out += [f"## Grants revoked outside snapworker: {len(data['grants_revoked_outside'])}", ""]
        out += md_table(
            ("target", "snapshot", "grantee", "granted", "first missed"),
            [
                (
                    _key(g),
                    g["snapshot"],
                    g["grantee"],
                    g["granted_at"] or "unknown",
                    g["first_missed"],
                )
                for g in revoked
            ],
        )
        out.append("")
        if more:
            out += [md_cell(more), ""]
    return out


def _drill_notes(v: dict[str, Any]) -> list[str]:
    notes = [_failed_check(c) for c in v["failed_checks"]]
    if v["error"]:
        notes.append(f"error: {v['error']}")
    if not v["scratch_deleted"] and v["status"] != "pending":
        notes.append(f"scratch cluster {v['scratch_cluster']} not deleted yet")
    return notes


def _run_notes(r: dict[str, Any]) -> list[str]:
    notes = [f"error: {r['error']}"] if r["error"] else []
    for f in r["failures"]:
        acc = f" {f['grantee']}" if f["grantee"] else ""
        notes.append(f"FAILED {f['action']} {f['snapshot']}{acc}: {f['error']}")
    return notes
