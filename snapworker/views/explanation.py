"""Rendering of ``plan --explain SNAPSHOT`` (see ``snapworker.core.explain``): text, JSON or
Markdown (the same sections as the text, as headings, pipe tables and lists)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from snapworker.core.explain import Explanation
from snapworker.core.targets import Pair
from snapworker.views.formatting import iso, md_cell, md_table, minute
from snapworker.views.plan_report import action_dict, drift_dicts, kept_dict, note_dict


def _age(d: timedelta | None) -> str:
    if d is None:
        return "-"
    days = d.total_seconds() / 86400
    if abs(days) >= 1:
        return f"{days:.1f} days"
    return f"{d.total_seconds() / 3600:.1f} hours"


def _where(pair: Pair | None) -> dict[str, Any]:
    """The snapshot's ``target``, ``account`` (its owner) and ``region``, when known."""
    if pair is None:
        return {}
    return {"target": pair.target, "account": pair.account, "region": pair.region}


def _in(pair: Pair | None) -> str:
    """`` in target dr-a (210987654321, eu-west-1)`` (empty when the pair is not known)."""
    if pair is None:
        return ""
    inside = f"{pair.account}, {pair.region}" if pair.account else pair.region
    return f" in target {pair.target} ({inside})"


def explanation_dict(e: Explanation, pair: Pair | None = None) -> dict[str, Any]:
    """``pair``: the (target, region) the snapshot was listed in; its ``target``,
    ``account`` and ``region`` then come first, and the entries carry them too."""
    at = _where(pair)
    return {
        **at,
        "snapshot": e.snapshot,
        "cluster": e.cluster,
        "type": e.type,
        "status": e.status,
        "create_time": iso(e.create_time),
        "generated_at": iso(e.now),
        "owner": {
            "owned": e.owned,
            "policy": e.policy,
            "proof": e.proof,
            "why": e.ownership,
        },
        "data_time": iso(e.data_time),
        "age_days": round(e.age.total_seconds() / 86400, 3) if e.age is not None else None,
        "rules": [{"rule": r.rule, "keeps": r.keeps, "why": r.why} for r in e.rules],
        "retention": e.retention,
        "hold": (
            {"tag": e.hold_tag, "reason": e.hold_reason} if e.hold_reason is not None else None
        ),
        "grants": [
            {
                "account": g.account,
                "listed": g.listed,
                "authorized": g.authorized,
                "granted_at": iso(g.granted_at),
                "revoked_at": iso(g.revoked_at),
                "lapses_at": iso(g.lapses_at),
                "status": g.status,
            }
            for g in e.grants
        ],
        "drift": drift_dicts(e.drift, e.actions, at or None),
        "actions": [action_dict(a, at or None) for a in e.actions],
        "kept": kept_dict(e.kept, at or None) if e.kept is not None else None,
        "fail_safe_days": e.fail_safe_days,
        "retention_period": e.retention_period,
        "aws_expiry": iso(e.aws_expiry),
        "notes": [note_dict(n, at or None) for n in e.notes],
        "copies": [
            {"policy": c.policy, "copy": c.copy, "state": c.state, "why": c.why} for c in e.copies
        ],
        "orphan": e.orphan,
        "outcome": e.outcome,
    }


def render_explanation(e: Explanation, fmt: str = "table", pair: Pair | None = None) -> str:
    """``pair``: the (target, region) the snapshot was listed in, named when given."""
    if fmt == "json":
        return json.dumps(explanation_dict(e, pair), indent=2)
    if fmt == "markdown":
        return _markdown(e, pair)
    out = [
        f"Snapshot {e.snapshot}{_in(pair)}  (cluster {e.cluster}, {e.type}, {e.status})",
        f"  as of {minute(e.now, zone=True)}",
        "",
        "Owner",
        f"  {e.ownership}" if e.owned else f"  not owned: {e.ownership}",
        "",
        "Age",
        f"  data time {minute(e.data_time, zone=True)}, {_age(e.age)} old"
        + (
            f" (AWS create time {minute(e.create_time, zone=True)})"
            if e.create_time != e.data_time
            else ""
        ),
    ]
    if e.type == "automated":
        out += ["", "Copies"]
        out += [f"  {line}" for line in _copy_lines(e)]
    if e.orphan is not None:
        out += ["", "Grants"]
        out += [f"  {line}" for line in _orphan_grant_lines(e)]
    elif e.owned and e.policy is not None:
        out += ["", "Retention rules"]
        if not e.rules:
            out.append(f"  {e.retention}")
        for r in e.rules:
            mark = "keeps" if r.keeps else "no   "
            out.append(f"  {mark}  {r.rule:<20} {r.why}")
        if e.rules:
            out.append(f"  => {e.retention}")
        out += ["", "Hold"]
        if e.hold_tag is None:
            out.append("  -")
        elif e.hold_reason is not None:
            out.append(
                f"  held: {e.hold_tag}={e.hold_reason} (never revoked nor deleted while set)"
            )
        else:
            out.append(f"  not held ({e.hold_tag} not set)")
        out += _aws_expiry_lines(e)
        out += ["", "Grants"]
        if not e.grants:
            out.append("  none (the policy shares with no account)")
        for g in e.grants:
            listed = "listed" if g.listed else "unlisted"
            out.append(f"  {g.account:<24} {listed:<8}  {g.status}")
        out += ["", "Drift"]
        if not e.drift:
            out.append("  none")
        for d in e.drift:
            out.append(f"  {d.account}: {d.reason}")
    out += ["", "Actions"]
    if not e.actions:
        out.append("  none")
    out += [f"  {line}" for line in _action_lines(e)]
    out += ["", f"Result: {e.outcome}"]
    return "\n".join(out)


def _copy_lines(e: Explanation) -> list[str]:
    """An automated snapshot's copies, one line per policy that copies its cluster."""
    if not e.copies:
        return [f"none: no policy of this plan copies the automated snapshots of {e.cluster}"]
    return [f"{c.policy}: {c.state} {c.copy}: {c.why}" for c in e.copies]


def _orphan_grant_lines(e: Explanation) -> list[str]:
    """The live grants of a snapshot whose policy is not in the plan (nothing decides)."""
    if not e.grants:
        return ["none (AWS lists no account with restore access)"]
    return [f"{g.account:<24} {g.status}" for g in e.grants]


def _aws_expiry_lines(e: Explanation) -> list[str]:
    """AWS's own expiry (ManualSnapshotRetentionPeriod), which ignores rules and hold tags."""
    period = e.retention_period
    policy = f" (fail_safe_days {e.fail_safe_days})" if e.fail_safe_days is not None else ""
    if period is None:
        if e.fail_safe_days is None:
            return []
        return [f"  AWS expiry: the snapshot's retention period is not reported{policy}"]
    if period < 0:
        return [f"  AWS expiry: none (ManualSnapshotRetentionPeriod -1: indefinite){policy}"]
    expiry = e.aws_expiry
    assert expiry is not None
    when = "overdue" if expiry <= e.now else f"in {_age(expiry - e.now)}"
    lines = [
        f"  AWS expiry: ManualSnapshotRetentionPeriod {period} days: AWS deletes it at "
        f"{minute(expiry, zone=True)} ({when}){policy}, whatever the rules say"
    ]
    if e.hold_reason is not None:
        lines.append(
            "  warning: held, but AWS will still delete it then: `snapworker hold` sets the "
            "period to -1 (a hold tag set by hand does not)"
        )
    return lines


def _action_lines(e: Explanation) -> list[str]:
    """The Actions section: each action, then what keeps it, then the notes (unindented)."""
    lines = []
    for a in e.actions:
        who = f" {a.account}" if a.account else ""
        lines.append(f"{a.kind}{who}: {a.reason}")
    if e.kept is not None:
        held = e.kept.held and e.kept.reason.startswith("held")
        lines.append(e.kept.reason if held else f"keep: {e.kept.reason}")
    lines += [f"{n.level}: {n.message}" for n in e.notes]
    return lines


def _markdown(e: Explanation, pair: Pair | None = None) -> str:
    created = (
        f" (AWS create time {minute(e.create_time, zone=True)})"
        if e.create_time != e.data_time
        else ""
    )
    out = [
        f"# Snapshot {md_cell(e.snapshot)}{md_cell(_in(pair))}",
        "",
        f"Cluster {e.cluster}, {e.type}, {e.status}; as of {minute(e.now, zone=True)}.",
        "",
        "## Owner",
        "",
        md_cell(e.ownership if e.owned else f"not owned: {e.ownership}"),
        "",
        "## Age",
        "",
        f"Data time {minute(e.data_time, zone=True)}, {_age(e.age)} old{created}.",
        "",
    ]
    if e.type == "automated":
        out += ["## Copies", ""]
        out += [f"- {md_cell(line)}" for line in _copy_lines(e)]
        out.append("")
    if e.orphan is not None:
        out += ["## Grants", ""]
        out += [f"- {md_cell(line)}" for line in _orphan_grant_lines(e)]
        out.append("")
    elif e.owned and e.policy is not None:
        out += ["## Retention rules", ""]
        if e.rules:
            rows = [(r.rule, "keeps" if r.keeps else "no", r.why) for r in e.rules]
            out += [*md_table(("rule", "verdict", "why"), rows), ""]
            out += [f"**=> {md_cell(e.retention)}**", ""]
        else:
            out += [md_cell(e.retention), ""]
        out += ["## Hold", ""]
        if e.hold_tag is None:
            out.append("-")
        elif e.hold_reason is not None:
            out.append(
                md_cell(f"held: {e.hold_tag}={e.hold_reason} (never revoked nor deleted while set)")
            )
        else:
            out.append(f"not held ({e.hold_tag} not set)")
        out.append("")
        out += [f"{md_cell(line.strip())}\n" for line in _aws_expiry_lines(e)]
        out += ["## Grants", ""]
        if e.grants:
            rows = [(g.account, "listed" if g.listed else "unlisted", g.status) for g in e.grants]
            out += [*md_table(("account", "listed", "status"), rows), ""]
        else:
            out += ["None (the policy shares with no account).", ""]
        out += ["## Drift", ""]
        out += [f"- {md_cell(f'{d.account}: {d.reason}')}" for d in e.drift] or ["None."]
        out.append("")
    out += ["## Actions", ""]
    actions = _action_lines(e)
    out += [f"- {md_cell(line)}" for line in actions] or ["None."]
    out += ["", f"**Result: {md_cell(e.outcome)}**", ""]
    return "\n".join(out)
