"""What the reports show (issue 16, defects 4 to 6): ``status`` never drops entries silently,
``-f markdown`` is Markdown wherever the help offers it, and every plan row names its
snapshot. Through the real CLI against moto's server, plus in-process renderings for what
is slow to reach through AWS (restore drills)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from snapworker.core import ids
from snapworker.core.model import Action, Kept, Plan
from snapworker.views.formatting import iso, md_table, minute
from snapworker.views.plan_report import render, single
from snapworker.views.status import LIMIT, render_status
from tests.e2e_support import Sandbox, plan_json

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def ok(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return result


def copies_shared(box: Sandbox, n: int) -> None:
    """n automated snapshots, copied by one run and shared (with the config's two accounts)
    by the next: 2n open grants."""
    box.cluster("prod-a", env="prod")
    for d in range(1, n + 1):
        box.automated("prod-a", d)
    ok(box.cli("run"))
    ok(box.cli("run"))


# -- defect 4: status truncated silently ---------------------------------------------------


@pytest.mark.e2e
def test_status_says_how_many_grants_it_left_out_and_all_lists_every_one(
    sandbox: Sandbox,
) -> None:
    copies_shared(sandbox, 11)
    table = ok(sandbox.cli("status")).stdout
    assert "Open grants: 22" in table
    listed = [ln for ln in table.splitlines() if re.match(r"  sw-\S+ -> \S+ \(since ", ln)]
    assert len(listed) == LIMIT
    assert "  ... and 2 more (use --all)" in table.splitlines()

    every = ok(sandbox.cli("status", "--all")).stdout
    listed = [ln for ln in every.splitlines() if re.match(r"  sw-\S+ -> \S+ \(since ", ln)]
    assert len(listed) == 22
    assert "more (use --all)" not in every
    data = json.loads(ok(sandbox.cli("status", "-f", "json")).stdout)
    assert len(data["open_grants"]) == 22  # the JSON always holds every entry


def _drill(i: int) -> SimpleNamespace:
    return SimpleNamespace(
        snapshot_id=f"sw-p-prod-a-{i:03d}",
        policy="p",
        cluster="prod-a",
        fire_time=NOW - timedelta(days=i),
        status="passed",
        started_at=NOW - timedelta(days=i),
        finished_at=NOW - timedelta(days=i, minutes=-30),
        scratch_cluster=f"swv-p-{i:03d}",
        scratch_deleted_at=NOW,
        detail={"checks": [{"name": "rows", "ok": True}]},
    )


class FakeStatus:
    """A state DB for ``status`` as plain records (the view reads them by attribute)."""

    def __init__(self, drills: int = 0, grants: int = 0) -> None:
        self.drills = [_drill(i) for i in range(drills)]
        self.grants = [
            SimpleNamespace(
                snapshot_id=f"sw-p-prod-a-{i:03d}", account="111122223333", granted_at=NOW
            )
            for i in range(grants)
        ]

    def owned_summary(self) -> Any:
        return SimpleNamespace(owned={}, open_grants=tuple(self.grants))

    def recent_runs(self, limit: int = 10) -> Any:
        return []

    def latest_drift(self) -> Any:
        return None

    def verifications(self, limit: int | None = None) -> Any:
        return self.drills[:limit]

    def latest_sizes(self) -> Any:
        return None


def test_status_says_how_many_drills_it_left_out_and_show_all_lists_every_one() -> None:
    store = FakeStatus(drills=LIMIT + 5)
    text = render_status(store)
    assert f"Restore verification (last drill per snapshot): {LIMIT + 5}" in text
    assert text.count(": PASSED at ") == LIMIT
    assert "  ... and 5 more (use --all)" in text.splitlines()
    every = render_status(store, show_all=True)
    assert every.count(": PASSED at ") == LIMIT + 5 and "more (use --all)" not in every
    md = render_status(store, "markdown")
    assert md.count("| PASSED |") == LIMIT and "... and 5 more (use --all)" in md
    assert render_status(store, "markdown", show_all=True).count("| PASSED |") == LIMIT + 5


def test_a_list_at_the_limit_gets_no_notice() -> None:
    text = render_status(FakeStatus(drills=LIMIT, grants=LIMIT))
    assert "more (use --all)" not in text
    assert text.count(": PASSED at ") == LIMIT


# -- defect 5: Markdown was the table text ----------------------------------------------------


def _help_formats(box: Sandbox, *command: str) -> set[str]:
    """The formats ``--help`` offers for ``--format``, and its help must not name fewer."""
    out = ok(box.cli(*command, "--help", COLUMNS="200")).stdout
    (line,) = [ln for ln in out.splitlines() if "--format" in ln]
    (choices,) = re.findall(r"<([a-z|]+)>", line)
    offered = set(choices.split("|"))
    named = {f for f in ("table", "json", "markdown", "html", "yaml", "csv", "text") if f in line}
    assert named == offered, line  # the help text names exactly the formats offered
    return offered


def _looks_like(fmt: str, text: str) -> None:
    if fmt == "json":
        json.loads(text)
    elif fmt == "html":
        assert text.startswith("<!DOCTYPE html>"), text[:200]
    elif fmt == "markdown":
        assert text.startswith("# "), text[:200]
        assert re.search(r"^\|---\|", text, re.MULTILINE), text  # a pipe table
        assert "\n## " in text
    else:
        assert not text.startswith(("#", "{")), text[:200]


@pytest.mark.e2e
def test_every_format_the_help_offers_renders_as_that_format(sandbox: Sandbox) -> None:
    copies_shared(sandbox, 2)
    sid = plan_json(sandbox.cli("plan", "-f", "json"))["kept"][0]["snapshot"]
    commands = {
        "status": ("status",),
        "plan": ("plan",),
        "plan --explain": ("plan", "--explain", sid),
    }
    for name, command in commands.items():
        formats = _help_formats(sandbox, *command[:1])
        reports = {"table", "json", "markdown"}
        assert formats == (reports | {"html"} if command[0] == "plan" else reports), name
        for fmt in sorted(formats):
            _looks_like(fmt, ok(sandbox.cli(*command, "--format", fmt)).stdout)
    md = ok(sandbox.cli("status", "-f", "markdown")).stdout
    assert "## Open grants: 4" in md and "| target | snapshot | grantee | since |" in md
    explained = ok(sandbox.cli("plan", "--explain", sid, "-f", "markdown")).stdout
    assert explained.startswith(f"# Snapshot {sid}\n")
    assert "## Retention rules" in explained and "| rule | verdict | why |" in explained
    assert "**Result: kept**" in explained


def test_markdown_cells_cannot_break_the_table() -> None:
    (header, rule, row) = md_table(("a", "b"), [("x|y", "two\nlines")])
    assert (header, rule) == ("| a | b |", "|---|---|")
    assert row == "| x\\|y | two lines |"


def test_one_date_formatter_for_people_and_one_for_scripts() -> None:
    paris = datetime(2026, 11, 27, 4, 5, 6, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert minute(paris) == "2026-11-27 04:05"
    assert minute(paris, zone=True) == "2026-11-27 04:05 UTC"
    assert minute(None) == minute(None, zone=True) == "-"
    assert iso(paris) == "2026-11-27T04:05:06Z"
    assert iso(None) is None


# -- defect 6: share, revoke and verify rows had no snapshot ----------------------------------


@pytest.mark.e2e
def test_every_plan_row_names_its_snapshot(sandbox: Sandbox) -> None:
    """Shares of new copies, then (later) revokes before deletes: each row of the table and
    of the Markdown names the snapshot it acts on, whatever row is above it."""
    sandbox.cluster("prod-a", env="prod")
    for d in (1, 2, 3, 4, 5):
        sandbox.automated("prod-a", d)
    ok(sandbox.cli("run"))  # copies; the shares are the next run's
    p = plan_json(sandbox.cli("plan", "-f", "json"))
    shares = [a for a in p["actions"] if a["action"] == "share"]
    assert len(shares) == 10
    table = ok(sandbox.cli("plan")).stdout
    md = ok(sandbox.cli("plan", "-f", "markdown")).stdout
    for a in shares:
        row = rf"^  {a['action']} +{re.escape(a['snapshot'])} +\S+ \S+ +{re.escape(a['grantee'])}: "
        assert re.search(row, table, re.MULTILINE), (a, table)
        cell = f"| {a['action']} | {a['snapshot']} | "
        assert cell in md, (a, md)

    ok(sandbox.cli("run"))  # shares
    # 40 days on, the two oldest copies are past max_age_days 35 and beyond keep_last 3.
    later = {"SNAPWORKER_FAKE_NOW": (datetime.now(UTC) + timedelta(days=40)).isoformat()}
    p = plan_json(sandbox.cli("plan", "-f", "json", **later))
    revokes = [a for a in p["actions"] if a["action"] == "revoke"]
    assert len(revokes) == 4
    table = ok(sandbox.cli("plan", **later)).stdout
    for a in revokes:
        row = rf"^  revoke +{re.escape(a['snapshot'])} +\S+ \S+ +{re.escape(a['grantee'])}: "
        assert re.search(row, table, re.MULTILINE), (a, table)


def test_drill_and_tag_rows_name_their_snapshot_too() -> None:
    """In process, the kinds the e2e test above does not reach: a restore drill and a
    re-tag, each under another snapshot's kept row."""
    older, newer = "sw-p-prod-a-older", "sw-p-prod-a-newer"
    plan = Plan(
        generated_at=NOW,
        actions=(
            Action("p", "prod-a", "tag", older, "tags lost in a crash", data_time=NOW),
            Action("p", "prod-a", "verify", older, "drill due", data_time=NOW),
        ),
        kept=(
            Kept("p", "prod-a", newer, "keep_last 3 (#1 newest)", NOW + timedelta(hours=1)),
            Kept("p", "prod-a", older, "keep_last 3 (#2 newest)", NOW),
        ),
    )
    table = render(single(plan, "us-east-1"), "table").splitlines()
    rows = [ln.split() for ln in table if ln.startswith("  ")]
    assert [(r[0], r[1]) for r in rows] == [
        ("keep", newer),
        ("keep", older),
        ("tag", older),
        ("verify", older),
    ]
    md = render(single(plan, "us-east-1"), "markdown")
    assert f"| verify | {older} | 2026-11-27 03:00 | drill due |" in md


ID = re.compile(r"(?<![\w:-])(?:rs:|sw-)[\w:.-]*\w")


def ids_repeated(line: str) -> list[str]:
    found = ID.findall(line)
    return sorted({i for i in found if found.count(i) > 1})


@pytest.mark.e2e
def test_plan_lines_name_each_snapshot_once(sandbox: Sandbox) -> None:
    """Issue 16: "from rs:X automated snapshot rs:X" and "info: rs:X not copied: rs:X is
    already past retention". Each id appears once per line of the table, of the Markdown and
    of the warnings on stderr; the copy row still says what it copies from, and the JSON
    keeps the source as its own key."""
    sandbox.cluster("prod-a", env="prod")
    sources = [sandbox.automated("prod-a", d) for d in (1, 2, 3, 4, 50)]
    # the copy of the 4-day-old source would take an id a snapshot snapworker does not own has
    taken = ids.copy_snapshot_id("prod-nightly", "prod-a", sources[3])
    sandbox.manual(taken, "prod-a", 4)
    table = ok(sandbox.cli("plan"))
    md = ok(sandbox.cli("plan", "-f", "markdown"))
    for out in (table.stdout, table.stderr, md.stdout):
        for line in out.splitlines():
            assert not ids_repeated(line), line
    copies = [ln for ln in table.stdout.splitlines() if ln.startswith("  copy ")]
    assert len(copies) == 3
    for src in sources[:3]:
        target = ids.copy_snapshot_id("prod-nightly", "prod-a", src)
        assert any(target in ln and f"from {src}: " in ln for ln in copies), (src, copies)
    assert f"info: not copied: {sources[4]} is already past retention" in table.stdout
    assert f"warning: cannot copy {sources[3]}: target id {taken} is taken" in table.stdout
    p = plan_json(sandbox.cli("plan", "-f", "json"))
    copied = {a["source"]: a for a in p["actions"] if a["action"] == "copy"}
    assert sorted(copied) == sorted(sources[:3])
    assert all(a["reason"] == "automated snapshot not yet copied" for a in copied.values())
