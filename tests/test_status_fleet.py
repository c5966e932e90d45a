"""``status`` over a fleet's state DB: split by target and region.

What a user reads: the pairs whose last run failed first (``error: TARGET/REGION: ...``);
owned snapshots under a ``target NAME (ACCOUNT, REGION)`` heading; with more than one pair,
every line of the other sections names its TARGET/REGION; in the JSON every entry starts
with ``target``, ``account`` (the owner) and ``region``, and a grant's other account is its
``grantee``. The store's records carry ``target``, ``owner_account`` and ``region``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from snapworker.views.status import render_status, status_dict

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
DR = {"target": "dr-a", "owner_account": "210987654321", "region": "eu-west-1"}
HOME = {"target": "home", "owner_account": "111111111111", "region": "us-east-1"}
GRANTEE = "444444444444"


def _owned(sid: str, pair: dict[str, str]) -> Any:
    return SimpleNamespace(
        **pair,
        snapshot_id=sid,
        made_for="prod-nightly",
        source_id=None,
        data_time=NOW,
        adopted=False,
        deleted_at=None,
        deleted_reason=None,
    )


def _run(i: int, pair: dict[str, str], status: str, error: str | None) -> Any:
    return SimpleNamespace(
        **pair,
        id=i,
        mode="run",
        status=status,
        started_at=NOW,
        finished_at=NOW,
        actions_ok=0,
        actions_failed=0,
        api_calls={},
        error=error,
        failures=(),
    )


class FleetStatus:
    """Two pairs with the same snapshot id; the last run of dr-a/eu-west-1 failed."""

    def owned_summary(self) -> Any:
        return SimpleNamespace(
            owned={"prod-nightly": {"prod-a": (_owned("sw-1", HOME), _owned("sw-1", DR))}},
            open_grants=(
                SimpleNamespace(**HOME, snapshot_id="sw-1", account=GRANTEE, granted_at=NOW),
            ),
        )

    def recent_runs(self, limit: int = 10) -> Any:
        return [_run(2, DR, "failed", "AccessDenied"), _run(1, HOME, "ok", None)]

    def pair_runs(self) -> Any:
        return [_run(2, DR, "failed", "AccessDenied"), _run(1, HOME, "ok", None)]

    def latest_drift(self) -> Any:
        item = SimpleNamespace(
            **HOME,
            policy="prod-nightly",
            cluster="prod-a",
            snapshot_id="sw-1",
            account="5" * 12,
            revoked=False,
        )
        return SimpleNamespace(run_id=1, seen_at=NOW, items=(item,))

    def verifications(self, limit: int | None = None) -> Any:
        return []

    def latest_sizes(self) -> Any:
        return None


def test_status_json_entries_name_their_pair_and_grantee() -> None:
    d = status_dict(FleetStatus())
    assert d["errors"] == [
        {
            "target": "dr-a",
            "account": "210987654321",
            "region": "eu-west-1",
            "run_id": 2,
            "status": "failed",
            "finished_at": "2026-11-27T03:00:00Z",
            "error": "AccessDenied",
        }
    ]
    assert [(o["target"], o["account"], o["region"], o["snapshot"]) for o in d["owned"]] == [
        ("home", "111111111111", "us-east-1", "sw-1"),
        ("dr-a", "210987654321", "eu-west-1", "sw-1"),
    ]
    (grant,) = d["open_grants"]
    assert list(grant)[:3] == ["target", "account", "region"]
    assert (grant["account"], grant["grantee"]) == ("111111111111", GRANTEE)
    (drift,) = d["drift"]["grants"]
    assert (drift["target"], drift["grantee"]) == ("home", "5" * 12)
    assert [(r["target"], r["region"], r["status"]) for r in d["runs"]] == [
        ("dr-a", "eu-west-1", "failed"),
        ("home", "us-east-1", "ok"),
    ]
    assert json.loads(render_status(FleetStatus(), "json")) == d


def test_status_table_lists_failed_pairs_first_and_groups_owned_by_target() -> None:
    lines = render_status(FleetStatus()).splitlines()
    assert lines[0] == "error: dr-a/eu-west-1: AccessDenied"
    owned = lines[lines.index("Owned snapshots: 2 live, 0 deleted by snapworker") + 1 :][:4]
    assert [ln.split("  ")[1] if ln.startswith("  target") else ln.split()[0] for ln in owned] == [
        "target dr-a (210987654321, eu-west-1)",
        "prod-nightly",
        "target home (111111111111, us-east-1)",
        "prod-nightly",
    ]
    assert f"  home/us-east-1 sw-1 -> {GRANTEE} (since 2026-11-27T03:00:00Z)" in lines
    assert (
        "  home/us-east-1 prod-nightly/prod-a: sw-1 -> 555555555555: reported, not revoked" in lines
    )
    assert any(ln.startswith("  #2     dr-a/eu-west-1 run") for ln in lines)


def test_status_markdown_lists_errors_and_a_target_column() -> None:
    md = render_status(FleetStatus(), "markdown")
    assert "## Errors\n\n- `error: dr-a/eu-west-1: AccessDenied`" in md
    assert "| target | policy | cluster | owned | newest data |" in md
    assert "| 210987654321, eu-west-1 |" not in md  # the heading names the target first
    assert "| dr-a (210987654321, eu-west-1) | prod-nightly | prod-a | 1 |" in md
    assert f"| home/us-east-1 | sw-1 | {GRANTEE} |" in md


def test_a_store_without_the_pair_read_lists_no_errors() -> None:
    """A store from before the fleet (no ``pair_runs``): no error section, the rest shown."""
    fleet = FleetStatus()
    store = SimpleNamespace(
        owned_summary=fleet.owned_summary,
        recent_runs=fleet.recent_runs,
        latest_drift=fleet.latest_drift,
        verifications=fleet.verifications,
        latest_sizes=fleet.latest_sizes,
    )
    assert status_dict(store)["errors"] == []
    assert render_status(store).startswith("Owned snapshots: 2 live")
