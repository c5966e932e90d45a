"""Renderers of a fleet's plan (table, JSON, Markdown) and of what a run did.

Every renderer takes the plans of the (target, region) pairs worked (``PairPlan``) and the
pairs that were skipped (``PairError``): the errors come first (``error: TARGET/REGION:
...``), then the plans grouped by target (in the order given), then policy, then cluster.
The table reads like restic's ``forget --dry-run``: every owned snapshot listed newest first
as kept (with every rule that keeps it) or acted on (with the reason), its shares and revokes
beneath it, each row naming its snapshot.

In the plan JSON every action, kept, drift and note entry starts with ``target``, ``account``
(the pair's owner account) and ``region``; a share's, revoke's or drift entry's other
account is its ``grantee``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from snapworker.core.model import Action, Kept, Note, Plan
from snapworker.core.sizes import Totals, totals
from snapworker.core.targets import DEFAULT_TARGET, Pair, PairError, PairPlan
from snapworker.views.formatting import iso, minute
from snapworker.views.sizes import (
    MEANING,
    plus,
    size_cell,
    sizes_json,
    totals_line,
    with_sizes,
)

Where = dict[str, Any]
"""``{"target", "account", "region"}``: the pair an entry belongs to, first in every entry."""


def where(pp: PairPlan) -> Where:
    """The pair's ``target``, ``account`` (the pair's, else the plan's: the account the
    credentials turned out to be) and ``region``."""
    return {
        "target": pp.pair.target,
        "account": pp.pair.account or pp.plan.account,
        "region": pp.pair.region,
    }


def pair_heading(pp: PairPlan | PairError) -> str:
    """``target dr-a (210987654321, eu-west-1)`` (the account left out when unknown)."""
    account = pp.pair.account or (pp.plan.account if isinstance(pp, PairPlan) else None)
    inside = f"{account}, {pp.pair.region}" if account else pp.pair.region
    return f"target {pp.pair.target} ({inside})"


def single(plan: Plan, region: str, target: str = DEFAULT_TARGET) -> list[PairPlan]:
    """One plan as the renderers' list: the one-pair convenience for callers with a Plan."""
    return [PairPlan(Pair(target, region, plan.account), plan)]


def error_dict(e: PairError) -> dict[str, Any]:
    return {
        "target": e.pair.target,
        "account": e.pair.account,
        "region": e.pair.region,
        "error": e.error,
    }


def action_dict(a: Action, at: Where | None = None) -> dict[str, Any]:
    d: dict[str, Any] = dict(at or {})
    d.update({"policy": a.policy, "cluster": a.cluster, "action": a.kind, "snapshot": a.snapshot})
    if a.source is not None:
        d["source"] = a.source
    if a.account is not None:
        d["grantee"] = a.account
    if a.data_time is not None:
        d["data_time"] = iso(a.data_time)
    if a.fire_time is not None:
        d["fire_time"] = iso(a.fire_time)
    d["reason"] = a.reason
    return d


def drift_dicts(
    drift: Iterable[Action], actions: Iterable[Action], at: Where | None = None
) -> list[dict[str, Any]]:
    """Drift entries (grants to accounts the policy does not list, the account as
    ``grantee``), each with its ``remedy``: ``"revoke"`` when ``actions`` revoke that grant
    (``revoke_unlisted: true``, or the snapshot is deleted), ``"report"`` when it is only
    reported (the default, or a hold). Only an entry whose grant is revoked says
    ``"action": "revoke"``."""
    revoking = {a.key for a in actions if a.kind == "revoke"}
    out: list[dict[str, Any]] = []
    for d in drift:
        entry = action_dict(d, at)
        if d.key in revoking:
            entry["remedy"] = "revoke"
        else:
            del entry["action"]
            entry["remedy"] = "report"
        out.append(entry)
    return out


def kept_dict(k: Kept, at: Where | None = None) -> dict[str, Any]:
    d: dict[str, Any] = dict(at or {})
    d.update({"policy": k.policy, "cluster": k.cluster, "snapshot": k.snapshot, "reason": k.reason})
    if k.data_time is not None:
        d["data_time"] = iso(k.data_time)
    if k.held:
        d["held"] = True
    return d


def note_dict(n: Note, at: Where | None = None) -> dict[str, Any]:
    d: dict[str, Any] = dict(at or {})
    d.update({"policy": n.policy, "level": n.level, "message": n.message})
    if n.cluster:
        d["cluster"] = n.cluster
    if n.snapshot:
        d["snapshot"] = n.snapshot
    return d


def _generated_at(plans: Sequence[PairPlan]) -> datetime | None:
    """When the plans were made: the earliest pair's clock (None: no pair was planned)."""
    return min((pp.plan.generated_at for pp in plans), default=None)


def plan_dict(
    plans: Sequence[PairPlan], errors: Sequence[PairError] = (), price: float | None = None
) -> dict[str, Any]:
    """The plan JSON of every pair. Each kept or acted-on snapshot's entry carries its
    ``size_mb`` and ``incremental_mb`` when AWS reported them; ``sizes`` holds the totals
    over all pairs, per account, per target and region, per policy and per cluster
    (``views.sizes``); ``errors`` the pairs skipped."""
    actions: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    drift: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for pp in plans:
        at, plan = where(pp), pp.plan
        sizes = plan.sizes
        actions += [with_sizes(action_dict(a, at), sizes.get(a.snapshot)) for a in plan.actions]
        kept += [with_sizes(kept_dict(k, at), sizes.get(k.snapshot)) for k in plan.kept]
        drift += drift_dicts(plan.drift, plan.actions, at)
        notes += [note_dict(n, at) for n in plan.notes]
    return {
        "generated_at": iso(_generated_at(plans)),
        "errors": [error_dict(e) for e in errors],
        "actions": actions,
        "kept": kept,
        "drift": drift,
        "notes": notes,
        "sizes": sizes_json([(where(pp), pp.plan) for pp in plans], price),
    }


def render_json(
    plans: Sequence[PairPlan], errors: Sequence[PairError] = (), price: float | None = None
) -> str:
    return json.dumps(plan_dict(plans, errors, price), indent=2)


def _counts(actions: Iterable[Action], kept: int) -> str:
    counts: dict[str, int] = defaultdict(int)
    n = 0
    for a in actions:
        counts[a.kind] += 1
        n += 1
    parts = ", ".join(f"{c} {k}" for k, c in counts.items())
    acts = f"{n} action{'s' if n != 1 else ''}" + (f" ({parts})" if parts else "")
    return f"{acts}, {kept} kept"


def summary(plan: Plan) -> str:
    """One pair's ``3 actions (2 create, 1 delete), 5 kept``."""
    return _counts(plan.actions, len(plan.kept))


def fleet_summary(plans: Sequence[PairPlan], errors: Sequence[PairError] = ()) -> str:
    """Every pair's actions and kept snapshots together; with more than one pair (or an
    error), how many pairs were planned and how many failed."""
    text = _counts(
        (a for pp in plans for a in pp.plan.actions), sum(len(pp.plan.kept) for pp in plans)
    )
    if len(plans) > 1 or errors:
        n = len(plans)
        text += f" over {n} target region{'s' if n != 1 else ''}"
        if errors:
            text += f", {len(errors)} failed"
    return text


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


def _pair_table(pp: PairPlan, price: float | None, sized: bool) -> list[str]:
    """One pair's groups, by policy then cluster, under its target heading."""
    plan = pp.plan
    sums = totals(plan) if sized else None
    out = [f"\n{pair_heading(pp)}"]
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
        out.append(f"{pair_heading(pp)} {totals_line(sums.account, price)}")
    if not plan.actions:
        out.append("Nothing to do.")
    return out


def _account_totals(plans: Sequence[PairPlan]) -> dict[str | None, Totals]:
    """Per owner account (in the order first met), the sizes of its pairs together."""
    out: dict[str | None, Totals] = {}
    for pp in plans:
        account = where(pp)["account"]
        out[account] = plus(out.get(account, Totals()), totals(pp.plan).account)
    return out


def render_table(
    plans: Sequence[PairPlan], errors: Sequence[PairError] = (), price: float | None = None
) -> str:
    """The plans for a person: the errors first, then per target (and region) its groups.
    With sizes reported, a size column (total, and what the snapshot adds: its incremental
    size) and totals per cluster, per policy, per target, per account and for all."""
    sized = any(pp.plan.sizes for pp in plans)
    at = _generated_at(plans)
    head = f"Plan at {minute(at, zone=True)}: " if at else "Plan: "
    out = [head + fleet_summary(plans, errors)]
    out += [e.line() for e in errors]
    for pp in plans:
        out += _pair_table(pp, price, sized)
    if sized:
        by_account = _account_totals(plans)
        out.append("")
        for account, t in by_account.items():
            out.append(f"account {account or 'unknown'} {totals_line(t, price)}")
        if len(plans) > 1:
            every = Totals()
            for t in by_account.values():
                every = plus(every, t)
            out.append(f"all targets {totals_line(every, price)}")
        out.append(f"(sizes: {MEANING})")
        if price is not None:
            out.append("(money figures are in the currency of report.price_per_gb_month)")
    return "\n".join(out)


def render_markdown(
    plans: Sequence[PairPlan], errors: Sequence[PairError] = (), price: float | None = None
) -> str:
    at = _generated_at(plans)
    title = f"# snapworker plan, {minute(at, zone=True)}" if at else "# snapworker plan"
    out = [title, "", fleet_summary(plans, errors), ""]
    if errors:
        out += ["## Errors", ""]
        out += [f"- `{e.line()}`" for e in errors]
        out.append("")
    for pp in plans:
        plan = pp.plan
        sums = totals(plan) if plan.sizes else None
        out += [f"## {pair_heading(pp)}", ""]
        groups = _by_group(plan)
        if not groups:
            out += ["Nothing planned.", ""]
        for (policy, cluster), (actions, kept) in sorted(groups.items()):
            out += [
                f"### {policy} / {cluster}",
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
            out += [f"Sizes of {pair_heading(pp)}: {totals_line(sums.account, price)}", ""]
        if plan.drift:
            out += ["### Drift", ""]
            out += [
                f"- {d.policy} / {d.cluster}: {d.snapshot} shared with {d.account}"
                for d in plan.drift
            ]
            out.append("")
        if plan.notes:
            out += ["### Notes", ""]
            for n in plan.notes:
                place = f" / {n.cluster}" if n.cluster else ""
                out.append(f"- **{n.level}** {n.policy}{place}: {n.message}")
            out.append("")
    if any(pp.plan.sizes for pp in plans):
        out += ["## Sizes", ""]
        for account, t in _account_totals(plans).items():
            out += [f"account {account or 'unknown'} {totals_line(t, price)}", ""]
        out += [f"({MEANING})", ""]
    return "\n".join(out)


def render(
    plans: Sequence[PairPlan],
    fmt: str,
    price: float | None = None,
    errors: Sequence[PairError] = (),
) -> str:
    """The plans as ``json``, ``markdown`` or ``table``; ``price``:
    ``report.price_per_gb_month`` (a money figure only with it); ``errors``: the pairs
    skipped, listed first."""
    if fmt == "json":
        return render_json(plans, errors, price)
    if fmt == "markdown":
        return render_markdown(plans, errors, price)
    return render_table(plans, errors, price)


def _outcome_lines(outcomes: Iterable[Any], key: str | None) -> tuple[list[str], int, int]:
    lines: list[str] = []
    ok = failed = 0
    where_ = f"{key} " if key else ""
    for o in outcomes:
        a = o.action
        grantee = f" {a.account}" if a.account else ""
        if o.ok:
            ok += 1
            lines.append(f"  ok      {where_}{a.kind:<6} {a.snapshot}{grantee}  ({o.outcome})")
        else:
            failed += 1
            lines.append(f"  FAILED  {where_}{a.kind:<6} {a.snapshot}{grantee}  {o.error}")
    return lines, ok, failed


def render_outcomes(outcomes: Iterable[Any]) -> str:
    """What one pair's run did (the one-pair form of :func:`render_run`)."""
    lines, ok, failed = _outcome_lines(outcomes, None)
    lines.append(f"{ok} succeeded, {failed} failed")
    return "\n".join(lines)


def render_run(
    results: Sequence[tuple[Pair, Iterable[Any]]], errors: Sequence[PairError] = ()
) -> str:
    """What a run did: the pairs skipped first (``error: TARGET/REGION: ...``), then per
    pair (in the order given) its heading and one line per action naming TARGET/REGION,
    then the counts over all pairs."""
    lines = [e.line() for e in errors]
    ok = failed = 0
    for pair, outcomes in results:
        body, n_ok, n_failed = _outcome_lines(outcomes, pair.key)
        ok, failed = ok + n_ok, failed + n_failed
        account = f"{pair.account}, " if pair.account else ""
        lines.append(
            f"target {pair.target} ({account}{pair.region}): {n_ok} succeeded, {n_failed} failed"
        )
        lines += body
    tail = f"{ok} succeeded, {failed} failed"
    if errors:
        tail += f"; {len(errors)} target region{'s' if len(errors) != 1 else ''} skipped"
    lines.append(tail)
    return "\n".join(lines)
