"""Renderers of a plan (table, JSON, Markdown) and of what a run did.

The table reads like restic's ``forget --dry-run``: grouped by policy and cluster, every
owned snapshot listed newest first as kept (with every rule that keeps it) or acted on
(with the reason), its shares and revokes beneath it, each row naming its snapshot.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from snapworker.core.model import Action, Kept, Note, Plan
from snapworker.views.formatting import iso, minute
from snapworker.views.sizes import (
    MEANING,
    size_cell,
    sizes_json,
    totals,
    totals_line,
    with_sizes,
)


def action_dict(a: Action) -> dict[str, Any]:
    d: dict[str, Any] = {
        "policy": a.policy,
        "cluster": a.cluster,
        "action": a.kind,
        "snapshot": a.snapshot,
    }
    if a.source is not None:
        d["source"] = a.source
    if a.account is not None:
        d["account"] = a.account
    if a.data_time is not None:
        d["data_time"] = iso(a.data_time)
    if a.fire_time is not None:
        d["fire_time"] = iso(a.fire_time)
    d["reason"] = a.reason
    return d


def drift_dicts(drift: Iterable[Action], actions: Iterable[Action]) -> list[dict[str, Any]]:
    """Drift entries (grants to accounts the policy does not list), each with its
    ``remedy``: ``"revoke"`` when ``actions`` revoke that grant (``revoke_unlisted: true``,
    or the snapshot is deleted), ``"report"`` when it is only reported (the default, or a
    hold). Only an entry whose grant is revoked says ``"action": "revoke"``."""
    revoking = {a.key for a in actions if a.kind == "revoke"}
    out: list[dict[str, Any]] = []
    for d in drift:
        entry = action_dict(d)
        if d.key in revoking:
            entry["remedy"] = "revoke"
        else:
            del entry["action"]
            entry["remedy"] = "report"
        out.append(entry)
    return out


def kept_dict(k: Kept) -> dict[str, Any]:
    d: dict[str, Any] = {
        "policy": k.policy,
        "cluster": k.cluster,
        "snapshot": k.snapshot,
        "reason": k.reason,
    }
    if k.data_time is not None:
        d["data_time"] = iso(k.data_time)
    if k.held:
        d["held"] = True
    return d


def note_dict(n: Note) -> dict[str, Any]:
    d: dict[str, Any] = {"policy": n.policy, "level": n.level, "message": n.message}
    if n.cluster:
        d["cluster"] = n.cluster
    if n.snapshot:
        d["snapshot"] = n.snapshot
    return d


def plan_dict(plan: Plan, price: float | None = None) -> dict[str, Any]:
    """The plan JSON. Each kept or acted-on snapshot's entry carries its ``size_mb`` and
    ``incremental_mb`` when AWS reported them; ``sizes`` holds the totals (``views.sizes``)."""
    sizes = plan.sizes
    return {
        "generated_at": iso(plan.generated_at),
        "actions": [with_sizes(action_dict(a), sizes.get(a.snapshot)) for a in plan.actions],
        "kept": [with_sizes(kept_dict(k), sizes.get(k.snapshot)) for k in plan.kept],
        "drift": drift_dicts(plan.drift, plan.actions),
        "notes": [note_dict(n) for n in plan.notes],
        "sizes": sizes_json(plan, price),
    }


def render_json(plan: Plan, price: float | None = None) -> str:
    return json.dumps(plan_dict(plan, price), indent=2)


def summary(plan: Plan) -> str:
    counts: dict[str, int] = defaultdict(int)
    for a in plan.actions:
        counts[a.kind] += 1
    parts = ", ".join(f"{n} {k}" for k, n in counts.items())
    n = len(plan.actions)
    acts = f"{n} action{'s' if n != 1 else ''}" + (f" ({parts})" if parts else "")
    return f"{acts}, {len(plan.kept)} kept"


Row = tuple[str, str, str, str]  # verb, snapshot, when, detail


def _group_rows(actions: Sequence[Action], kept: Sequence[Kept]) -> list[Row]:
    """One group's rows: creates/copies first, then each owned snapshot newest first with
    its shares, revokes, drills and delete beneath it. Every row names its snapshot and its
    data time, so no row reads as if it belonged to the one above it."""
    rows: list[Row] = []
    per_snap: dict[str, list[Action]] = defaultdict(list)
    when: dict[str, datetime | None] = {}
    for a in actions:
        if a.kind in ("create", "copy"):
            rows.append(
                (
                    a.kind,
                    a.snapshot,
                    minute(a.data_time or a.fire_time),
                    f"from {a.source}: {a.reason}" if a.source else a.reason,
                )
            )
        else:
            per_snap[a.snapshot].append(a)
            if a.data_time is not None:
                when[a.snapshot] = a.data_time
    kept_by = {k.snapshot: k for k in kept}
    for k in kept:
        when.setdefault(k.snapshot, k.data_time)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for sid in sorted(
        set(per_snap) | set(kept_by), key=lambda s: (when.get(s) or epoch, s), reverse=True
    ):
        kept_row = kept_by.get(sid)
        acts = per_snap.get(sid, [])
        delete = next((a for a in acts if a.kind == "delete"), None)
        if kept_row is not None:
            verb = "held" if kept_row.held else "keep"
            rows.append((verb, sid, minute(kept_row.data_time), kept_row.reason))
        elif delete is None:
            rows.append(("", sid, minute(when.get(sid)), ""))
        for a in acts:
            if a.kind == "delete":
                continue
            detail = f"{a.account + ': ' if a.account else ''}{a.reason}"
            rows.append((a.kind, sid, minute(when.get(sid)), detail))
        if delete is not None:
            rows.append(("delete", sid, minute(delete.data_time), delete.reason))
    return rows


def _by_group(plan: Plan) -> dict[tuple[str, str], tuple[list[Action], list[Kept]]]:
    """The plan's actions and kept snapshots by (policy, cluster)."""
    groups: dict[tuple[str, str], tuple[list[Action], list[Kept]]] = defaultdict(lambda: ([], []))
    for a in plan.actions:
        groups[(a.policy, a.cluster)][0].append(a)
    for k in plan.kept:
        groups[(k.policy, k.cluster)][1].append(k)
    return groups


def _size_of(plan: Plan, verb: str, sid: str) -> str:
    """The size cell of a row: on a snapshot's own row (kept, held, delete), not its shares'."""
    if verb not in ("keep", "held", "delete", ""):
        return ""
    return size_cell(plan.sizes.get(sid))


def render_table(plan: Plan, price: float | None = None) -> str:
    """The plan for a person. With sizes reported, a size column (total, and what the
    snapshot adds: its incremental size) and totals per cluster, per policy and for all."""
    sized = bool(plan.sizes)
    sums = totals(plan) if sized else None
    out = [f"Plan at {minute(plan.generated_at, zone=True)}: {summary(plan)}"]
    groups = _by_group(plan)
    notes_by: dict[tuple[str, str | None], list[Note]] = defaultdict(list)
    for n in plan.notes:
        notes_by[(n.policy, n.cluster)].append(n)
    drift_by: dict[tuple[str, str], list[Action]] = defaultdict(list)
    for d in plan.drift:
        drift_by[(d.policy, d.cluster)].append(d)
    keys = sorted(set(groups) | set(drift_by) | {(p, c) for p, c in notes_by if c})
    policies = sorted({k[0] for k in keys} | {p for p, _ in notes_by})
    for policy in policies:
        for n in notes_by.get((policy, None), []):
            out.append(f"\npolicy {policy}: {n.level}: {n.message}")
        for key in (k for k in keys if k[0] == policy):
            actions, kept = groups.get(key, ([], []))
            out.append(f"\npolicy {key[0]}  cluster {key[1]}")
            rows = _group_rows(actions, kept)
            if rows:
                w0 = max(len(r[0]) for r in rows)
                w1 = max(len(r[1]) for r in rows)
                cells = [_size_of(plan, r[0], r[1]) for r in rows]
                w2 = max(len(c) for c in cells)
                for (verb, sid, when, detail), cell in zip(rows, cells, strict=True):
                    size = f"  {cell:>{w2}}" if sized else ""
                    out.append(f"  {verb:<{w0}}  {sid:<{w1}}  {when:<16}{size}  {detail}".rstrip())
            for d in drift_by.get(key, []):
                out.append(
                    f"  drift  {d.snapshot}: shared with {d.account}, not listed by the policy"
                )
            for n in notes_by.get(key, []):
                # A note's message stands alone (stderr and Markdown print it without its
                # snapshot): name the snapshot only when the message does not.
                named = n.snapshot is None or n.snapshot in n.message
                out.append(f"  {n.level}:{'' if named else f' {n.snapshot}'} {n.message}")
            if sums is not None and key in sums.clusters:
                out.append(f"  {totals_line(sums.clusters[key], price, what='cluster total')}")
        if sums is not None and policy in sums.policies:
            out.append(f"policy {policy} {totals_line(sums.policies[policy], price)}")
    if sums is not None:
        account = f" {plan.account}" if plan.account else ""
        out.append(f"\naccount{account} {totals_line(sums.account, price)}")
        out.append(f"(sizes: {MEANING})")
        if price is not None:
            out.append("(money figures are in the currency of report.price_per_gb_month)")
    if not plan.actions:
        out.append("\nNothing to do.")
    return "\n".join(out)


def render_markdown(plan: Plan, price: float | None = None) -> str:
    out = [f"# snapworker plan, {minute(plan.generated_at, zone=True)}", "", summary(plan), ""]
    sums = totals(plan) if plan.sizes else None
    groups = _by_group(plan)
    for (policy, cluster), (actions, kept) in sorted(groups.items()):
        out += [
            f"## {policy} / {cluster}",
            "",
            "| | snapshot | data time | why |",
            "|---|---|---|---|",
        ]
        for verb, sid, when, detail in _group_rows(actions, kept):
            out.append(f"| {verb.strip()} | {sid} | {when} | {detail.replace('|', '/')} |")
        out.append("")
        if sums is not None and (policy, cluster) in sums.clusters:
            out += [totals_line(sums.clusters[(policy, cluster)], price), ""]
    if sums is not None:
        out += ["## Sizes", "", totals_line(sums.account, price), "", f"({MEANING})", ""]
    if plan.drift:
        out += ["## Drift", ""]
        out += [
            f"- {d.policy} / {d.cluster}: {d.snapshot} shared with {d.account}" for d in plan.drift
        ]
        out.append("")
    if plan.notes:
        out += ["## Notes", ""]
        for n in plan.notes:
            where = f" / {n.cluster}" if n.cluster else ""
            out.append(f"- **{n.level}** {n.policy}{where}: {n.message}")
        out.append("")
    return "\n".join(out)


def render(plan: Plan, fmt: str, price: float | None = None) -> str:
    """``price``: ``report.price_per_gb_month`` (a money figure only with it)."""
    if fmt == "json":
        return render_json(plan, price)
    if fmt == "markdown":
        return render_markdown(plan, price)
    return render_table(plan, price)


def render_outcomes(outcomes: Iterable[Any]) -> str:
    lines = []
    ok = failed = 0
    for o in outcomes:
        a = o.action
        target = f" {a.account}" if a.account else ""
        if o.ok:
            ok += 1
            lines.append(f"  ok      {a.kind:<6} {a.snapshot}{target}  ({o.outcome})")
        else:
            failed += 1
            lines.append(f"  FAILED  {a.kind:<6} {a.snapshot}{target}  {o.error}")
    lines.append(f"{ok} succeeded, {failed} failed")
    return "\n".join(lines)
