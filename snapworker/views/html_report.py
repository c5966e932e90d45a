"""The HTML report (``snapworker report --html``, ``plan --format html``, the daemon's
``/``): one self-contained page, a retention timeline per policy and cluster, then tables
of drift, recent failures and the last restore drills.

Self-contained means no network request at all: the CSS and the SVG are inline, there is no
script, no web font, no image URL. Each snapshot is one SVG row: a marker at its data time,
a bar to the date retention would stop keeping it (or to the edge, with an arrow, when no
date is set), and a label saying its fate in words, so the page reads without colour; the
bars carry patterns too (hatched: deleted now; dashed: planned). Its ``<title>`` (the
hover text) is the whole ``plan --explain`` text. The SVGs scale to the window's width and
the tables scroll sideways, so a narrow window works.

Every input is plain data (the plan, the inventory, the state, the policies, and the
status as ``views.status.status_dict`` returns it); nothing here reads a clock or a file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any

from snapworker.core.explain import Explanation, explain
from snapworker.core.model import Action, Inventory, Kept, Note, Plan, State
from snapworker.core.planner import owned_snapshots
from snapworker.core.policy import Policy
from snapworker.core.targets import Pair, PairError, PairPlan
from snapworker.views.explanation import render_explanation
from snapworker.views.formatting import minute
from snapworker.views.html_fates import FATES, Group, Mark, groups
from snapworker.views.plan_report import drift_dicts, fleet_summary, pair_heading, summary
from snapworker.views.sizes import MEANING

W = 640  # the SVG's user units across; it scales to the page
X0, X1 = 12, W - 12
ROW = 46
TOP = 34


@dataclass(frozen=True)
class ReportInput:
    """What the page is drawn from. ``status``: ``status_dict`` of the state DB, or None
    (the tables of failures and drills are then left out, and the page says so)."""

    plan: Plan
    inventory: Inventory
    state: State
    policies: Sequence[Policy]
    account: str | None
    all_policy_names: Sequence[str]
    status: dict[str, Any] | None = None
    what_if: bool = False
    heading: str | None = None  # instead of "Plan at ..." (the daemon's page says whose)
    price: float | None = None  # report.price_per_gb_month: a monthly cost, in its currency


def explanations(r: ReportInput) -> list[Explanation]:
    """``plan --explain`` of every owned snapshot of the selected policies, from the one plan.

    Each snapshot is explained against its own cluster's slice of the inventory and state:
    an explanation reads only its cluster's snapshots (their ranks, the source of a copy)
    and its own records and grants, so the slice gives the same text, and the whole page
    costs the sum over clusters of (snapshots per cluster) squared, not (all snapshots)
    squared."""
    names = {p.name for p in r.policies}
    owned = owned_snapshots(r.policies, r.inventory, r.state, r.account)
    by_cluster: dict[str, list[str]] = defaultdict(list)
    for sid, snap in r.inventory.snapshots.items():
        by_cluster[snap.cluster].append(sid)
    plans = _plan_by_cluster(r.plan)
    out = []
    for cluster in sorted(by_cluster):
        ids = by_cluster[cluster]
        mine = [sid for sid in sorted(ids) if sid in owned and owned[sid].policy in names]
        if not mine:
            continue
        inventory, state = _slice(r.inventory, r.state, cluster, ids)
        for sid in mine:
            out.append(
                explain(
                    sid,
                    r.policies,
                    inventory,
                    state,
                    r.plan.generated_at,
                    r.account,
                    r.all_policy_names,
                    planned=plans.get(cluster, Plan(r.plan.generated_at)),
                )
            )
    return out


def _plan_by_cluster(plan: Plan) -> dict[str, Plan]:
    """The plan's entries by cluster (an explanation picks its snapshot's out of them)."""
    actions: dict[str, list[Action]] = defaultdict(list)
    kept: dict[str, list[Kept]] = defaultdict(list)
    drift: dict[str, list[Action]] = defaultdict(list)
    notes: dict[str, list[Note]] = defaultdict(list)
    for a in plan.actions:
        actions[a.cluster].append(a)
    for k in plan.kept:
        kept[k.cluster].append(k)
    for d in plan.drift:
        drift[d.cluster].append(d)
    for n in plan.notes:
        if n.cluster is not None:
            notes[n.cluster].append(n)
    clusters = set(actions) | set(kept) | set(drift) | set(notes)
    return {
        c: Plan(
            plan.generated_at, tuple(actions[c]), tuple(kept[c]), tuple(notes[c]), tuple(drift[c])
        )
        for c in clusters
    }


def _slice(inv: Inventory, state: State, cluster: str, ids: list[str]) -> tuple[Inventory, State]:
    """One cluster's snapshots, owned records and grants (pending entries: all, few)."""
    keep = set(ids)
    return (
        Inventory(clusters=inv.clusters, snapshots={sid: inv.snapshots[sid] for sid in ids}),
        State(
            owned={k: v for k, v in state.owned.items() if k in keep or v.cluster == cluster},
            grants=tuple(g for g in state.grants if g.snapshot_id in keep),
            pending=state.pending,
            verifications=state.verifications,
        ),
    )


def _timelines(r: ReportInput) -> list[str]:
    """One pair's timelines (a group per policy and cluster) and the sizes' hint."""
    now = r.plan.generated_at
    made = [a for a in r.plan.actions if a.kind in ("create", "copy")]
    tls = groups(explanations(r), made, r.inventory, {p.name: p for p in r.policies}, now, r.price)
    body: list[str] = []
    if not tls:
        body.append("<p>No owned snapshot and nothing planned.</p>")
    body += [_timeline(g, now) for g in tls]
    if any(g.totals for g in tls):
        cur = " Money figures are in the currency of report.price_per_gb_month." if r.price else ""
        body.append(f"<p class=hint>Sizes: {escape(MEANING)}.{escape(cur)}</p>")
    return body


def render_html(r: ReportInput) -> str:
    """One pair's page (the one-pair form of :func:`render_fleet_html`)."""
    now = r.plan.generated_at
    when = minute(now, zone=True)
    heading = f"Plan as it would be at {when} (what-if)" if r.what_if else f"Plan at {when}"
    heading = r.heading or heading
    body = [
        "<header><h1>snapworker: retention timeline</h1>",
        f"<p>{escape(heading)}: {escape(summary(r.plan))}.</p></header>",
        _legend(),
    ]
    body += _timelines(r)
    body += _tables(r)
    return _PAGE.format(title=escape(f"snapworker report, {when}"), body="\n".join(body))


def render_fleet_html(
    reports: Sequence[tuple[Pair, ReportInput]],
    errors: Sequence[PairError] = (),
    heading: str | None = None,
) -> str:
    """The fleet's page: the pairs skipped first (``error: TARGET/REGION: ...``), then a
    section per pair, in the order given (``target NAME (ACCOUNT, REGION)``), each with its
    timelines (by policy, then cluster) and its tables."""
    plans = [PairPlan(pair, r.plan) for pair, r in reports]
    at = min((r.plan.generated_at for _, r in reports), default=None)
    when = minute(at, zone=True) if at else "-"
    what_if = any(r.what_if for _, r in reports)
    default = f"Plan as it would be at {when} (what-if)" if what_if else f"Plan at {when}"
    body = [
        "<header><h1>snapworker: retention timeline</h1>",
        f"<p>{escape(heading or default)}: {escape(fleet_summary(plans, errors))}.</p></header>",
    ]
    if errors:
        items = "".join(f'<li class="error">{escape(e.line())}</li>' for e in errors)
        body.append(f"<section><h2>Errors</h2><ul>{items}</ul></section>")
    body.append(_legend())
    for pp, (_, r) in zip(plans, reports, strict=True):
        pair = pp.pair
        body.append(
            f'<section class="target" data-target="{escape(pair.target)}" '
            f'data-region="{escape(pair.region)}"><h2 class="target">'
            f"{escape(pair_heading(pp))}<span>{escape(summary(r.plan))}</span></h2>"
        )
        body += _timelines(r)
        body += _tables(r)
        body.append("</section>")
    return _PAGE.format(title=escape(f"snapworker report, {when}"), body="\n".join(body))


def explanation_page(e: Explanation) -> str:
    """``plan --explain SNAPSHOT --format html``: the explanation's text as a page."""
    body = (
        f"<header><h1>Snapshot {escape(e.snapshot)}</h1></header>"
        f'<div class="scroll"><pre>{escape(render_explanation(e, "table"))}</pre></div>'
    )
    return _PAGE.format(title=escape(f"snapworker: {e.snapshot}"), body=body)


# -- the timelines ------------------------------------------------------------------------


def _timeline(g: Group, now: datetime) -> str:
    times = [m.at for m in g.marks] + [now]
    times += [m.until for m in g.marks if m.until is not None]
    if g.horizon is not None:
        times.append(g.horizon)
    lo, hi = min(times), max(times)
    span = max(hi - lo, timedelta(days=1))
    lo, hi = lo - span * 0.03, hi + span * 0.06

    def x(t: datetime) -> float:
        return round(X0 + (X1 - X0) * ((t - lo) / (hi - lo)), 1)

    height = TOP + ROW * len(g.marks) + 8
    parts = [
        f'<svg viewBox="0 0 {W} {height}" role="img" '
        f'aria-label="{escape(g.policy)} / {escape(g.cluster)}: {len(g.marks)} snapshots">',
        *_axis(lo, hi, x, height),
    ]
    anchor = "end" if x(now) > W / 2 else "start"
    parts += _vline(x(now), height, "now", f"now {minute(now)}", anchor, height - 3)
    if g.horizon is not None:  # labelled under the axis, clear of "now" at the bottom
        label = f"horizon: {g.horizon_label}"
        anchor = "end" if x(g.horizon) > W / 2 else "start"
        parts += _vline(x(g.horizon), height, "horizon", label, anchor, 29)
    for i, m in enumerate(g.marks):
        parts.append(_row(m, TOP + ROW * i, x))
    parts.append("</svg>")
    head = f"<h2>policy {escape(g.policy)} <span>cluster {escape(g.cluster)}</span></h2>"
    if g.totals:
        head += f'<p class="totals">{escape(g.totals)}</p>'
    return f'<section class="group">{head}<div class="tl">{"".join(parts)}</div></section>'


def _axis(lo: datetime, hi: datetime, x: Any, height: int) -> list[str]:
    out = [f'<line class="axis" x1="{X0}" y1="18" x2="{X1}" y2="18"/>']
    fmt = "%Y-%m-%d" if hi - lo > timedelta(days=5) else "%m-%d %H:%M"
    for i in range(6):
        t = lo + (hi - lo) * (0.04 + 0.92 * i / 5)
        out.append(f'<line class="tick" x1="{x(t)}" y1="14" x2="{x(t)}" y2="{height}"/>')
        out.append(
            f'<text class="tick" x="{x(t)}" y="11" text-anchor="middle">{t.strftime(fmt)}</text>'
        )
    return out


def _vline(xv: float, height: int, cls: str, label: str, anchor: str, y: int) -> list[str]:
    dx = -4 if anchor == "end" else 4
    return [
        f'<line class="{cls}" x1="{xv}" y1="18" x2="{xv}" y2="{height}"/>',
        f'<text class="{cls}" x="{xv + dx}" y="{y}" text-anchor="{anchor}">{escape(label)}</text>',
    ]


def _row(m: Mark, y: int, x: Any) -> str:
    """One snapshot: its id, its fate in words, then a marker at its data time and a bar to
    its expiry (an arrow to the edge when it has none)."""
    xm, yb = x(m.at), y + 34
    if m.until is not None:
        end, arrow = x(m.until), ""
    elif m.fate in ("kept", "held", "pending"):
        end, arrow = X1, f'<path class="arrow" d="M{X1 - 6},{yb - 1} l6,4 l-6,4 z"/>'
    else:
        end, arrow = xm, ""
    bar = ""
    if end > xm:
        bar = f'<rect class="bar" x="{xm}" y="{yb}" width="{round(end - xm, 1)}" height="6"/>'
    if m.until is not None:
        bar += f'<line class="until" x1="{end}" y1="{yb - 5}" x2="{end}" y2="{yb + 11}"/>'
    fate = " · ".join((m.label, *m.extras))
    return (
        f'<g class="snap fate-{m.fate}" data-snapshot="{escape(m.snapshot)}" '
        f'data-fate="{m.fate}" tabindex="0"><title>{escape(m.title)}</title>'
        f'<rect class="hit" x="{X0}" y="{y + 1}" width="{X1 - X0}" height="{ROW - 2}"/>'
        f"{bar}{arrow}{_marker(m.fate, xm, yb + 3)}"
        f'<text class="id" x="{X0 + 2}" y="{y + 13}">{escape(m.snapshot)}</text>'
        f'<text class="fate" x="{X0 + 2}" y="{y + 27}">{escape(fate)}</text></g>'
    )


def _marker(fate: str, xv: float, y: int) -> str:
    """A shape per fate, so colour is not the only cue."""
    if fate in ("delete", "deferred"):
        return f'<path class="mk" d="M{xv - 6},{y - 6} l12,12 m0,-12 l-12,12"/>'
    if fate in ("copy", "create"):
        return f'<path class="mk" d="M{xv},{y - 7} l7,7 l-7,7 l-7,-7 z"/>'
    if fate == "held":
        return f'<rect class="mk" x="{xv - 6}" y="{y - 6}" width="12" height="12"/>'
    if fate == "pending":
        return f'<path class="mk" d="M{xv},{y - 7} l7,12 l-14,0 z"/>'
    return f'<circle class="mk" cx="{xv}" cy="{y}" r="6"/>'


def _legend() -> str:
    items = []
    for fate, meaning in FATES:
        svg = f'<svg viewBox="0 0 20 20" class="sw fate-{fate}">{_marker(fate, 10, 10)}</svg>'
        items.append(f"<li>{svg}<b>{fate}</b> {escape(meaning)}</li>")
    return (
        '<ul class="legend">' + "".join(items) + "</ul>"
        "<p class=hint>Hover (or focus) a snapshot for its whole decision, as "
        "<code>plan --explain</code> gives it. The bar runs from its data time to the date "
        "it expires; an arrow: no expiry date while no newer snapshot arrives.</p>"
    )


# -- the tables ---------------------------------------------------------------------------


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> str:
    if not rows:
        return f"<section><h2>{escape(title)}</h2><p>{escape(empty)}</p></section>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{escape(str(c) if c is not None else '-')}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return (
        f'<section><h2>{escape(title)}</h2><div class="scroll"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></section>"
    )


def _tables(r: ReportInput) -> list[str]:
    drift = [
        (d["policy"], d["cluster"], d["snapshot"], d["grantee"], d["remedy"])
        for d in drift_dicts(r.plan.drift, r.plan.actions)
    ]
    out = [
        _table(
            "Drift: grants to accounts the policy does not list",
            ("policy", "cluster", "snapshot", "account", "remedy"),
            drift,
            "None.",
        )
    ]
    if r.status is None:
        out.append("<p>No state DB was read: recent failures and restore drills not shown.</p>")
        return out
    failures = []
    for run in r.status["runs"]:
        if run["error"]:
            failures.append((f"#{run['id']}", run["started_at"], "run", "", "", run["error"]))
        for f in run["failures"]:
            row = (f"#{run['id']}", run["started_at"], f["action"], f["snapshot"])
            failures.append((*row, f["grantee"], f["error"]))
    out.append(
        _table(
            "Recent failures",
            ("run", "started", "action", "snapshot", "account", "error"),
            failures,
            f"None in the last {len(r.status['runs'])} runs.",
        )
    )
    drills = [
        (
            v["policy"],
            v["cluster"],
            v["snapshot"],
            v["status"].upper(),
            v["finished_at"] or v["started_at"],
            f"{v['checks_passed']}/{v['checks']}",
            v["error"],
        )
        for v in r.status["verifications"][:20]
    ]
    out.append(
        _table(
            "Last restore drills",
            ("policy", "cluster", "snapshot", "result", "at", "checks passed", "error"),
            drills,
            "No restore drill recorded.",
        )
    )
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
:root {{ color-scheme: light; --ink: #1d232b; --mute: #5b6572; --line: #d5dae1; }}
body {{ font: 14px/1.45 system-ui, sans-serif; color: var(--ink); margin: 0 auto;
  max-width: 1000px; padding: 12px 16px; }}
h1 {{ font-size: 20px; margin: 4px 0; }}
h2 {{ font-size: 15px; margin: 18px 0 4px; }}
h2 span {{ color: var(--mute); font-weight: normal; margin-left: .5em; }}
.hint {{ color: var(--mute); font-size: 12px; margin: 2px 0 8px; }}
.totals {{ font-size: 12px; margin: 0 0 4px; }}
.legend {{ display: flex; flex-wrap: wrap; gap: 4px 14px; padding: 0; margin: 6px 0;
  list-style: none; font-size: 12px; }}
.legend li {{ display: flex; align-items: center; gap: 4px; }}
.sw {{ width: 16px; height: 16px; }}
.tl svg {{ width: 100%; max-width: 960px; height: auto; display: block;
  border: 1px solid var(--line); border-radius: 4px; background: #fbfcfd; }}
svg text {{ font: 9px system-ui, sans-serif; fill: var(--ink); }}
svg text.id {{ font-weight: 600; }}
svg text.tick {{ fill: var(--mute); font-size: 8px; }}
line.axis {{ stroke: #8a939e; }} line.tick {{ stroke: #eceff3; }}
line.now {{ stroke: #1d232b; stroke-width: 1.5; }}
line.horizon {{ stroke: #b5472f; stroke-dasharray: 5 3; }}
text.now {{ font-weight: 600; }} text.horizon {{ fill: #b5472f; }}
.snap .hit {{ fill: transparent; }}
.snap:hover .hit, .snap:focus .hit {{ fill: #eef3fb; }}
.snap .bar {{ fill: var(--c); opacity: .55; }}
.snap .mk, .sw .mk {{ fill: var(--c); stroke: #1d232b; stroke-width: 1; }}
.snap .until {{ stroke: var(--c); stroke-width: 2; }}
.snap .arrow {{ fill: var(--c); }}
.fate-kept {{ --c: #2e7d4f; }} .fate-expires {{ --c: #c98a12; }}
.fate-held {{ --c: #3b64c4; }} .fate-pending {{ --c: #8a939e; }}
.fate-delete {{ --c: #c0392b; }} .fate-deferred {{ --c: #e08a7e; }}
.fate-copy, .fate-create {{ --c: #7b4fc4; }}
.fate-delete .mk, .fate-deferred .mk {{ stroke: var(--c); stroke-width: 3; }}
.fate-deferred .mk {{ stroke-dasharray: 3 2; }}
.fate-delete text.id {{ text-decoration: line-through; }}
.fate-copy .mk, .fate-create .mk {{ stroke-dasharray: 3 2; }}
.fate-held .bar {{ fill: url(#hatch); }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: 12px; min-width: 100%; }}
th, td {{ border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left;
  white-space: nowrap; }}
th {{ background: #f1f3f6; }}
@media (max-width: 600px) {{ body {{ padding: 8px; }} .tl svg text {{ font-size: 13px; }}
  .tl svg text.tick {{ font-size: 11px; }} }}
</style></head>
<body>
<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>
<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse"
 patternTransform="rotate(45)"><rect width="6" height="6" fill="#3b64c4" opacity=".3"/>
<line x1="0" y1="0" x2="0" y2="6" stroke="#3b64c4" stroke-width="3"/></pattern>
</defs></svg>
{body}
</body></html>
"""
