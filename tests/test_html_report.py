"""The HTML report (``report --html``, ``plan --format html``) of a sandbox estate, through
the real CLI against moto's server, rendered by headless Chromium (Debian's ``chromium``,
installed by ``.ci/services``): every owned snapshot appears exactly once with its fate,
the page makes no external request, and it renders in a wide and in a narrow window.
``docs/report.png`` is this test's wide screenshot.

Also ``plan --at``: the plan at a given instant equals the plan made with the clock really
at that instant (``SNAPWORKER_FAKE_NOW``), on the same estate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_support import Sandbox, plan_json

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
UNLISTED = "444455556666"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (.ci/services installs Debian's chromium package)",
)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def estate(box: Sandbox, now: datetime) -> None:
    """prod-a with six copies (1 to 30 days old, shared), the oldest held, the newest shared
    by hand with an unlisted account (drift), and a new automated snapshot not copied yet."""
    box.cluster("prod-a", env="prod")
    for age in (1, 2, 3, 10, 20, 30):
        box.automated("prod-a", age, now)
    clock = {"SNAPWORKER_FAKE_NOW": now.isoformat()}
    ok(box.cli("run", **clock))
    ok(box.cli("run", **clock))  # shares the copies made by the first run
    copies = sorted(
        (sid for sid, s in box.snapshots().items() if s["type"] == "manual"),
    )
    assert len(copies) == 6
    ok(box.cli("hold", copies[0], "--reason", "audit 2026-Q4", **clock))
    box.client().authorize_snapshot_access(
        SnapshotIdentifier=copies[-1], AccountWithRestoreAccess=UNLISTED
    )
    box.automated("prod-a", 0.25, now)


def owned_fates(plan: dict[str, Any]) -> dict[str, str]:
    """Each snapshot of the plan and the fate the page must give it."""
    fates: dict[str, str] = {}
    for a in plan["actions"]:
        if a["action"] in ("create", "copy"):
            fates[a["snapshot"]] = a["action"]
        elif a["action"] == "delete":
            fates[a["snapshot"]] = "delete"
    for k in plan["kept"]:
        fate = "held" if k.get("held") else "kept-or-expires"
        if "over max_deletes_per_run" in k["reason"] and not k.get("held"):
            fate = "deferred"
        elif k["reason"].startswith("status '"):
            fate = "pending"
        fates.setdefault(k["snapshot"], fate)
    return fates


class _Marks(HTMLParser):
    """Every element carrying data-snapshot, and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[str, str]] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-snapshot" in a:
            self.marks.append((a["data-snapshot"] or "", a.get("data-fate") or ""))
        for name in ("src", "href", "xlink:href", "action", "poster", "srcset"):
            if a.get(name):
                self.urls.append(a[name] or "")


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp / "chromium-profile"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def assert_self_contained(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", page, re.I)
    assert not re.search(r"@import", page, re.I)
    assert "<script" not in page.lower()
    parser = _Marks()
    parser.feed(page)
    assert all(u.startswith("#") for u in parser.urls), parser.urls


def check_page(page: str, plan: dict[str, Any]) -> None:
    assert_self_contained(page)
    parser = _Marks()
    parser.feed(page)
    seen = [sid for sid, _ in parser.marks]
    expected = owned_fates(plan)
    assert sorted(seen) == sorted(expected), "each owned or planned snapshot exactly once"
    for sid, fate in parser.marks:
        want = expected[sid]
        assert fate in (("kept", "expires") if want == "kept-or-expires" else (want,)), sid


@needs_chromium
def test_html_report_in_chromium(sandbox: Sandbox, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    estate(sandbox, now)
    at = (now + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = tmp_path / "report.html"
    done = ok(sandbox.cli("report", "--html", str(out), "--at", at))
    assert str(out) in done.stdout
    page = out.read_text()
    plan = plan_json(sandbox.cli("plan", "--format", "json", "--at", at))
    kinds = {a["action"] for a in plan["actions"]}
    assert {"copy", "revoke", "delete"} <= kinds, kinds
    check_page(page, plan)
    assert "(what-if)" in page
    # The fates in words, so the page reads without colour.
    for words in ("revoke 2, then delete now", "held: audit 2026-Q4", "no expiry date"):
        assert words in page, words
    assert re.search(r"kept by [a-z_, ]+; expires \d{4}-\d{2}-\d{2}", page)
    assert "shared with 2 accounts" in page
    assert re.search(rf"<td>{UNLISTED}</td><td>report</td>", page)  # the drift table
    # The hover text is plan --explain's, word for word, for every owned snapshot.
    fates = owned_fates(plan)
    for sid in (s for s, f in fates.items() if f not in ("copy", "create")):
        explained = ok(sandbox.cli("plan", "--explain", sid, "--at", at)).stdout.strip()
        assert f"<title>{escape(explained)}</title>" in page, sid

    # Rendered by Chromium: the DOM after layout has the same marks, and no request left.
    dom = chromium("--dump-dom", out.as_uri(), tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr
    check_page(dom.stdout, plan)
    wide = tmp_path / "wide.png"
    narrow = tmp_path / "narrow.png"
    for png, size in ((wide, "1280,900"), (narrow, "420,900")):
        shot = chromium(f"--screenshot={png}", f"--window-size={size}", out.as_uri(), tmp=tmp_path)
        assert shot.returncode == 0, shot.stderr
        assert png.stat().st_size > 10_000, f"{png.name}: an empty page?"
    data = wide.read_bytes()
    assert len(data) < 200_000, f"screenshot of {len(data)} bytes: the README's must stay small"
    if os.environ.get("SNAPWORKER_UPDATE_SCREENSHOT"):
        (ROOT / "docs" / "report.png").write_bytes(data)  # the README shows it


def test_plan_format_html_is_the_same_page(sandbox: Sandbox) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    estate(sandbox, now)
    page = ok(sandbox.cli("plan", "--format", "html")).stdout
    plan = plan_json(sandbox.cli("plan", "--format", "json"))
    check_page(page, plan)
    assert page.startswith("<!DOCTYPE html>")
    assert "Recent failures" in page and "Last restore drills" in page


def test_plan_at_equals_the_plan_when_the_clock_is_there(sandbox: Sandbox) -> None:
    """40 days ahead retention expires copies: the what-if plan and the real one agree."""
    now = datetime.now(UTC).replace(microsecond=0)
    estate(sandbox, now)
    t = now + timedelta(days=40)
    text = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    what_if = plan_json(sandbox.cli("plan", "--format", "json", "--at", text))
    real = plan_json(sandbox.cli("plan", "--format", "json", SNAPWORKER_FAKE_NOW=text))
    assert what_if["generated_at"] == text
    # The shifted clock keeps running (a second or so passes): compare to the minute.
    assert real["generated_at"][:16] == text[:16]
    assert {a["action"] for a in what_if["actions"]} >= {"revoke", "delete"}
    for plan in (what_if, real):
        plan.pop("generated_at")
    assert json.dumps(what_if, sort_keys=True) == json.dumps(real, sort_keys=True)
    # Nothing was changed or recorded: the real plan now still deletes nothing.
    assert not [
        a
        for a in plan_json(sandbox.cli("plan", "--format", "json"))["actions"]
        if a["action"] == "delete"
    ]


@pytest.mark.parametrize("bad", ["2027-01-15", "2027-01-15T00:00", "tomorrow", "2027-13-01T00:00Z"])
def test_plan_at_needs_an_iso_time_with_a_zone(sandbox: Sandbox, bad: str) -> None:
    for args in (("plan", "--at", bad), ("report", "--html", "x.html", "--at", bad)):
        done = sandbox.cli(*args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "--at" in done.stderr
        assert "Traceback" not in done.stderr


def test_every_fate_in_process() -> None:
    """Plain data, no AWS: deferred by the per-run cap, still being copied, held, kept
    for good, expiring, deleted, and a copy planned; each snapshot once, with its fate."""
    from snapworker.core import planner
    from snapworker.core.model import State
    from snapworker.views.html_report import ReportInput, render_html
    from tests import factories as f

    pol = f.policy(limits={"max_deletes_per_run": 1}, hold_tag="snapworker:hold")
    sources = [f.automated("prod-a", f.days_ago(d)) for d in (1, 2, 3, 20, 40, 50, 60)]
    copies = [f.owned_copy(pol.name, s, accounts=["111122223333"]) for s in sources[:-1]]
    held = f.owned_copy(pol.name, sources[-1], extra_tags={"snapworker:hold": "legal"})
    creating = f.owned_copy(pol.name, f.automated("prod-a", f.days_ago(0.5)), status="creating")
    new = f.automated("prod-a", f.days_ago(0.2))
    inv = f.inventory([f.cluster("prod-a")], [*copies, held, creating, new])
    plan = planner.plan([pol.core], inv, State(), f.NOW, account=None)
    page = render_html(ReportInput(plan, inv, State(), [pol.core], None, [pol.name]))
    parser = _Marks()
    parser.feed(page)
    fates = dict(parser.marks)
    assert len(fates) == len(parser.marks) == 9
    assert fates[copies[0].id] == fates[copies[1].id] == fates[copies[2].id] == "kept"
    assert fates[copies[3].id] == "expires"  # 20 days old: max_age_days 35 keeps it 15 more
    assert fates[copies[5].id] == "delete"  # the oldest expired one: the cap of 1
    assert fates[copies[4].id] == "deferred"
    assert fates[held.id] == "held"
    assert fates[creating.id] == "pending"
    assert [fate for sid, fate in parser.marks if sid not in inv.snapshots] == ["copy"]
    assert "expires 2026-12-12" in page  # 20 days old on 2026-11-27, 35 at most
    assert_self_contained(page)
