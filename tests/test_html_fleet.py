"""The HTML report over a fleet: the pairs skipped first, then a section per target and
region, in the order given, each with its timelines and tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from snapworker.core.model import Action, Inventory, Plan, State
from snapworker.core.targets import Pair, PairError
from snapworker.views.html_report import ReportInput, render_fleet_html

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def _input(account: str) -> ReportInput:
    plan = Plan(
        NOW,
        drift=(Action("p", "prod-a", "revoke", "sw-1", "drift", account="5" * 12),),
        account=account,
    )
    return ReportInput(plan, Inventory({}, {}), State(), [], account, ["p"])


def test_fleet_page_lists_errors_then_a_section_per_target() -> None:
    dr = Pair("dr-a", "eu-west-1", "210987654321")
    home = Pair("home", "us-east-1", "111111111111")
    page = render_fleet_html(
        [(dr, _input("210987654321")), (home, _input("111111111111"))],
        [PairError(Pair("dr-b", "us-east-1", "333333333333"), "AssumeRole refused")],
    )
    assert page.startswith("<!DOCTYPE html>")
    assert '<li class="error">error: dr-b/us-east-1: AssumeRole refused</li>' in page
    heads = re.findall(r'<h2 class="target">([^<]*)<span>', page)
    assert heads == [
        "target dr-a (210987654321, eu-west-1)",
        "target home (111111111111, us-east-1)",
    ]
    assert page.index("error: dr-b/us-east-1") < page.index('data-target="dr-a"')
    assert page.index('data-target="dr-a"') < page.index('data-target="home"')
    # each section's drift table names the grantee
    assert page.count(f"<td>{'5' * 12}</td><td>report</td>") == 2
    assert "0 actions, 0 kept over 2 target regions, 1 failed" in page
