"""The plan's reports over a fleet: several (target, region) pairs and the pairs skipped.

What a user reads: in the JSON every entry starts with ``target``, ``account``, ``region``
and names the other account of a share, revoke or drift ``grantee``; ``errors`` lists the
pairs skipped; ``sizes`` totals over all pairs, per account and per pair. The table and the
Markdown list the errors first (``error: TARGET/REGION: ...``), then group by target, then
policy, then cluster. ``run`` names TARGET/REGION on each outcome.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

from snapworker.core.model import Action, Kept, Note, Plan, Sizes
from snapworker.core.targets import Pair, PairError, PairPlan
from snapworker.views.plan_report import (
    fleet_summary,
    plan_dict,
    render,
    render_run,
    single,
)

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
HOME = Pair("home", "us-east-1", "111111111111")
DR_EU = Pair("dr-a", "eu-west-1", "210987654321", role_arn="arn:aws:iam::210987654321:role/sw")
DR_US = Pair("dr-a", "us-east-1", "210987654321", role_arn="arn:aws:iam::210987654321:role/sw")
REFUSED = Pair("dr-b", "us-east-1", "333333333333", role_arn="arn:aws:iam::333333333333:role/sw")
DENIED = Pair("home", "eu-west-1", "111111111111")
OTHER = "444444444444"


def _plan(cluster: str = "prod-a", account: str | None = None) -> Plan:
    """The same ids in every pair: one delete, one share, one kept, one drift, one note."""
    return Plan(
        NOW,
        actions=(
            Action("prod-nightly", cluster, "share", "sw-new", "listed", account=OTHER),
            Action("prod-nightly", cluster, "delete", "sw-old", "age 40d > 35d"),
        ),
        kept=(Kept("prod-nightly", cluster, "sw-new", "keep_last 3 (#1 newest)", NOW),),
        drift=(Action("prod-nightly", cluster, "revoke", "sw-new", "drift", account="5" * 12),),
        notes=(Note("prod-nightly", cluster, "cluster paused", level="warning"),),
        sizes={"sw-new": Sizes(2048.0, 1024.0), "sw-old": Sizes(1024.0, 512.0)},
        account=account,
    )


PLANS = [PairPlan(DR_EU, _plan()), PairPlan(HOME, _plan()), PairPlan(DR_US, _plan("prod-b"))]
ERRORS = [
    PairError(REFUSED, "AssumeRole refused: AccessDenied"),
    PairError(DENIED, "AccessDenied on DescribeClusters"),
]


def test_every_json_entry_starts_with_its_target_account_and_region() -> None:
    d = plan_dict(PLANS, ERRORS)
    assert list(d) == ["generated_at", "errors", "actions", "kept", "drift", "notes", "sizes"]
    assert d["generated_at"] == "2026-11-27T03:00:00Z"
    for section in ("actions", "kept", "drift", "notes"):
        assert [list(e)[:3] for e in d[section]] == [["target", "account", "region"]] * len(
            d[section]
        )
    assert [(a["target"], a["account"], a["region"], a["action"]) for a in d["actions"]] == [
        ("dr-a", "210987654321", "eu-west-1", "share"),
        ("dr-a", "210987654321", "eu-west-1", "delete"),
        ("home", "111111111111", "us-east-1", "share"),
        ("home", "111111111111", "us-east-1", "delete"),
        ("dr-a", "210987654321", "us-east-1", "share"),
        ("dr-a", "210987654321", "us-east-1", "delete"),
    ]
    share = d["actions"][0]
    assert share["grantee"] == OTHER and share["account"] == "210987654321"
    assert "grantee" not in d["actions"][1]  # a delete has no other account
    assert {(e["grantee"], e["remedy"]) for e in d["drift"]} == {("5" * 12, "report")}
    assert d["notes"][0]["region"] == "eu-west-1" and d["notes"][0]["cluster"] == "prod-a"


def test_errors_in_the_json_name_the_pair() -> None:
    assert plan_dict(PLANS, ERRORS)["errors"] == [
        {
            "target": "dr-b",
            "account": "333333333333",
            "region": "us-east-1",
            "error": "AssumeRole refused: AccessDenied",
        },
        {
            "target": "home",
            "account": "111111111111",
            "region": "eu-west-1",
            "error": "AccessDenied on DescribeClusters",
        },
    ]
    only_errors = plan_dict([], ERRORS)
    assert only_errors["generated_at"] is None and only_errors["actions"] == []


def test_the_plans_account_stands_in_when_the_pair_has_none() -> None:
    """The worker's own credentials: the pair's account is learnt, the plan carries it."""
    (entry,) = plan_dict([PairPlan(Pair("default", "us-east-1"), _plan(account="1" * 12))])["kept"]
    assert (entry["target"], entry["account"], entry["region"]) == (
        "default",
        "1" * 12,
        "us-east-1",
    )


def test_sizes_total_over_all_pairs_per_account_and_per_pair() -> None:
    s = plan_dict(PLANS)["sizes"]
    # each pair: sw-new and sw-old, 3 GB in total sizes, 1.5 GB incremental, sw-old deleted
    assert (s["total"]["snapshots"], s["total"]["deletes"]) == (6, 3)
    assert (s["total"]["size_mb"], s["total"]["incremental_mb"], s["total"]["frees_mb"]) == (
        9216.0,
        4608.0,
        1536.0,
    )
    assert [(a["account"], a["snapshots"]) for a in s["accounts"]] == [
        ("210987654321", 4),
        ("111111111111", 2),
    ]
    assert [(t["target"], t["region"], t["snapshots"]) for t in s["targets"]] == [
        ("dr-a", "eu-west-1", 2),
        ("home", "us-east-1", 2),
        ("dr-a", "us-east-1", 2),
    ]
    assert [(c["target"], c["region"], c["cluster"]) for c in s["clusters"]] == [
        ("dr-a", "eu-west-1", "prod-a"),
        ("home", "us-east-1", "prod-a"),
        ("dr-a", "us-east-1", "prod-b"),
    ]
    assert list(s["policies"][0])[:4] == ["target", "account", "region", "policy"]


def test_table_lists_errors_first_then_groups_by_target_policy_cluster() -> None:
    table = render(PLANS, "table", errors=ERRORS)
    lines = table.splitlines()
    assert lines[0] == (
        "Plan at 2026-11-27 03:00 UTC: 6 actions (3 share, 3 delete), 3 kept "
        "over 3 target regions, 2 failed"
    )
    assert lines[1:3] == [
        "error: dr-b/us-east-1: AssumeRole refused: AccessDenied",
        "error: home/eu-west-1: AccessDenied on DescribeClusters",
    ]
    headings = [ln for ln in lines if ln.startswith(("target ", "policy "))]
    assert [h for h in headings if "total" not in h] == [
        "target dr-a (210987654321, eu-west-1)",
        "policy prod-nightly  cluster prod-a",
        "target home (111111111111, us-east-1)",
        "policy prod-nightly  cluster prod-a",
        "target dr-a (210987654321, us-east-1)",
        "policy prod-nightly  cluster prod-b",
    ]
    assert any(ln.startswith("  share   sw-new") and f"{OTHER}: listed" in ln for ln in lines)
    assert "account 210987654321 total: 4 snapshots" in table
    assert "all targets total: 6 snapshots" in table


def test_markdown_lists_errors_first_then_a_heading_per_target() -> None:
    md = render(PLANS, "markdown", errors=ERRORS)
    heads = [ln for ln in md.splitlines() if ln.startswith("#")]
    assert heads[:6] == [
        "# snapworker plan, 2026-11-27 03:00 UTC",
        "## Errors",
        "## target dr-a (210987654321, eu-west-1)",
        "### prod-nightly / prod-a",
        "### Drift",
        "### Notes",
    ]
    assert "- `error: dr-b/us-east-1: AssumeRole refused: AccessDenied`" in md
    assert heads.index("## target home (111111111111, us-east-1)") < heads.index(
        "## target dr-a (210987654321, us-east-1)"
    )


def test_json_render_is_the_plan_dict_and_single_is_one_default_pair() -> None:
    assert json.loads(render(PLANS, "json", errors=ERRORS)) == plan_dict(PLANS, ERRORS)
    (pp,) = single(_plan(account="1" * 12), "us-east-1")
    assert pp.pair == Pair("default", "us-east-1", "1" * 12)
    assert fleet_summary([pp]) == "2 actions (1 share, 1 delete), 1 kept"


def test_run_output_names_target_and_region_on_every_outcome() -> None:
    share = Action("p", "c", "share", "sw-1", "listed", account=OTHER)
    delete = Action("p", "c", "delete", "sw-0", "old")
    text = render_run(
        [
            (DR_EU, [SimpleNamespace(action=share, ok=True, outcome="shared", error=None)]),
            (HOME, [SimpleNamespace(action=delete, ok=False, outcome="failed", error="Busy")]),
        ],
        [ERRORS[0]],
    )
    assert text.splitlines() == [
        "error: dr-b/us-east-1: AssumeRole refused: AccessDenied",
        "target dr-a (210987654321, eu-west-1): 1 succeeded, 0 failed",
        f"  ok      dr-a/eu-west-1 share  sw-1 {OTHER}  (shared)",
        "target home (111111111111, us-east-1): 0 succeeded, 1 failed",
        "  FAILED  home/us-east-1 delete sw-0  Busy",
        "1 succeeded, 1 failed; 1 target region skipped",
    ]


def test_explanation_names_the_pair_of_the_snapshot() -> None:
    from snapworker.core.explain import explain
    from snapworker.core.model import Cluster, Inventory, Snapshot, State
    from snapworker.views.explanation import explanation_dict, render_explanation

    snap = Snapshot(
        "rs:prod-a-1", "prod-a", "automated", "available", NOW, owner_account=DR_EU.account
    )
    inv = Inventory({"prod-a": Cluster("prod-a", "available")}, {snap.id: snap})
    e = explain(snap.id, [], inv, State(), NOW, DR_EU.account, [])
    first = render_explanation(e, "table", DR_EU).splitlines()[0]
    assert first.startswith("Snapshot rs:prod-a-1 in target dr-a (210987654321, eu-west-1)  (")
    d = explanation_dict(e, DR_EU)
    assert list(d)[:4] == ["target", "account", "region", "snapshot"]
    assert (d["target"], d["region"]) == ("dr-a", "eu-west-1")
    assert "target" not in explanation_dict(e)  # the pair not known: not named
    md = render_explanation(e, "markdown", DR_EU)
    assert md.startswith("# Snapshot rs:prod-a-1 in target dr-a (210987654321, eu-west-1)")
