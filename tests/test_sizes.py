"""What the snapshots cost and what a plan frees (issue 15): the sizes AWS reports, parsed by
the gateway, reported by the sandbox, shown by ``plan`` (JSON and table) per snapshot and as
totals, the deletions' incremental sizes as what they free, and a money figure only with
``report.price_per_gb_month``."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapworker.adapters.aws.redshift import snapshot_from_aws
from snapworker.config import ConfigError, load_config
from snapworker.core.model import Kept, Plan, Sizes
from snapworker.sandbox.moto_ext.wire import default_sizes
from snapworker.views.plan_report import render, single
from tests.e2e_support import CONFIG, Sandbox, plan_json

RAW = {
    "SnapshotIdentifier": "s1",
    "ClusterIdentifier": "c1",
    "SnapshotType": "manual",
    "Status": "available",
    "SnapshotCreateTime": datetime(2026, 11, 1, tzinfo=UTC),
}


def test_gateway_reads_the_sizes_and_tolerates_their_absence() -> None:
    s = snapshot_from_aws(
        RAW | {"TotalBackupSizeInMegaBytes": 2048.5, "ActualIncrementalBackupSizeInMegaBytes": 12.0}
    )
    assert (s.size_mb, s.incremental_mb) == (2048.5, 12.0)
    s = snapshot_from_aws(RAW)
    assert (s.size_mb, s.incremental_mb) == (None, None)
    for bad in ("x", float("inf"), -1.0, True):
        assert snapshot_from_aws(RAW | {"TotalBackupSizeInMegaBytes": bad}).size_mb is None


def test_sandbox_sizes_are_deterministic_and_plausible() -> None:
    total, inc = default_sizes("prod-a", "snap-1")
    assert (total, inc) == default_sizes("prod-a", "snap-1")
    assert 20_000 < total < 220_000 and 0 < inc < total
    assert default_sizes("prod-a", "snap-2") != (total, inc)


def _config(tmp_path: Path, extra: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(
        extra
        + "policies:\n  - name: p\n    select: {clusters: [a]}\n    retention: {keep_last: 1}\n"
    )
    return p


@pytest.mark.parametrize("bad", ["0", "-1", '"0.02"', "true", ".inf"])
def test_price_must_be_a_positive_number(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_config(tmp_path, f"report:\n  price_per_gb_month: {bad}\n"))
    assert "report.price_per_gb_month" in str(exc.value)


def test_price_is_optional(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, "")).report.price_per_gb_month is None
    cfg = load_config(_config(tmp_path, "report:\n  price_per_gb_month: 0.024\n"))
    assert cfg.report.price_per_gb_month == 0.024


def test_table_without_sizes_shows_no_size_column_nor_totals() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    kept = (Kept("p", "c", "s1", "keep_last 1 (#1 newest)", now),)
    plain = render(single(Plan(now, kept=kept), "us-east-1"), "table")
    assert "total" not in plain and "GB" not in plain
    sized = render(
        single(Plan(now, kept=kept, sizes={"s1": Sizes(2048.0, 512.0)}), "us-east-1"), "table"
    )
    assert "2.0 GB (+512 MB)" in sized
    assert "total: 1 snapshot, about 512 MB stored (2.0 GB in total sizes)" in sized


# -- through the real CLI, against moto's server -------------------------------------------


def _set_sizes(box: Sandbox, sid: str, total: float, incremental: float) -> None:
    """Through the sandbox's admin endpoint (what a test in another process would use)."""
    body = json.dumps({"snapshot": sid, "total_mb": total, "incremental_mb": incremental})
    req = urllib.request.Request(
        box.url + "/_snapworker/sizes",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    assert json.loads(urllib.request.urlopen(req, timeout=10).read())["snapshot"] == sid


@pytest.mark.e2e
def test_plan_shows_sizes_totals_and_what_deleting_frees(sandbox: Sandbox) -> None:
    box = sandbox
    now = datetime.now(UTC)
    box.cluster("prod-a", env="prod")
    for age in (1, 2, 3, 20):
        box.automated("prod-a", age, now)
    for _ in range(2):  # copies, then shares
        r = box.cli("run")
        assert r.returncode == 0, r.stderr
    copies = sorted(
        (sid for sid, s in box.snapshots().items() if s["tags"].get("snapworker:kind") == "copy"),
    )
    assert len(copies) == 4
    sizes = {sid: (100_000.0 + i, 1024.0 * (i + 1)) for i, sid in enumerate(copies)}
    for sid, (total, inc) in sizes.items():
        _set_sizes(box, sid, total, inc)

    later = (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = plan_json(box.cli("plan", "--format", "json", SNAPWORKER_FAKE_NOW=later))
    deleted = [a["snapshot"] for a in p["actions"] if a["action"] == "delete"]
    assert len(deleted) == 1  # the copy of the 20-day-old one: 50 days old, not in the newest 3
    for entry in p["kept"] + [a for a in p["actions"] if a["snapshot"] in sizes]:
        assert (entry["size_mb"], entry["incremental_mb"]) == sizes[entry["snapshot"]]
    where = {"target": "default", "account": "123456789012", "region": "us-east-1"}
    (acc,) = p["sizes"]["accounts"]
    assert acc["account"] == "123456789012"
    assert p["sizes"]["total"] == _strip(acc)
    assert p["sizes"]["targets"] == [{**where, **_strip(acc)}]
    assert (acc["snapshots"], acc["sized"], acc["deletes"]) == (4, 4, 1)
    assert acc["frees_mb"] == sizes[deleted[0]][1]  # the incremental size, not the total
    assert acc["size_mb"] == round(sum(t for t, _ in sizes.values()), 1)
    assert acc["incremental_mb"] == sum(i for _, i in sizes.values())
    assert p["sizes"]["policies"] == [{**where, "policy": "prod-nightly", **_strip(acc)}]
    assert p["sizes"]["clusters"] == [
        {**where, "policy": "prod-nightly", "cluster": "prod-a", **_strip(acc)}
    ]
    assert "deleting one frees about its incremental size" in p["sizes"]["meaning"]
    assert "cost_per_month" not in json.dumps(p) and "price" not in json.dumps(p)

    table = box.cli("plan", SNAPWORKER_FAKE_NOW=later)
    assert table.returncode == 0, table.stderr
    freed = f"{sizes[deleted[0]][1] / 1024:.1f} GB"
    assert re.search(
        rf"^  delete  {deleted[0]}  .* 97\.7 GB \(\+{freed}\)  age", table.stdout, re.M
    )
    assert "policy prod-nightly total: 4 snapshots, about 10.0 GB stored" in table.stdout
    assert f"deleting 1 frees about {freed}" in table.stdout
    assert "per month" not in table.stdout

    # with a price: a monthly cost, in the price's currency
    box.config.write_text(
        CONFIG.format(db=box.db).replace(
            "policies:", "report:\n  price_per_gb_month: 0.5\npolicies:"
        )
    )
    p = plan_json(box.cli("plan", "--format", "json", SNAPWORKER_FAKE_NOW=later))
    acc = p["sizes"]["total"]
    assert acc["cost_per_month"] == 5.0  # 10 GB stored (incremental) x 0.5
    assert acc["frees_per_month"] == round(sizes[deleted[0]][1] / 1024 * 0.5, 2)
    assert p["sizes"]["price_per_gb_month"] == 0.5
    table = box.cli("plan", SNAPWORKER_FAKE_NOW=later)
    assert "5.00 per month" in table.stdout
    assert "currency of report.price_per_gb_month" in table.stdout

    # status (the state DB only): per policy, what the kept snapshots occupy after the run
    r = box.cli("run", SNAPWORKER_FAKE_NOW=later)
    assert r.returncode == 0, r.stderr
    status = box.cli("status")
    assert status.returncode == 0, status.stderr
    kept_inc = sum(i for sid, (_, i) in sizes.items() if sid != deleted[0])  # 9 GB
    line = f"prod-nightly         total: 3 snapshots, about {kept_inc / 1024:.1f} GB stored"
    assert line in status.stdout
    assert f"{kept_inc / 1024 * 0.5:.2f} per month" in status.stdout
    data = json.loads(box.cli("status", "--format", "json").stdout)["sizes"]
    assert [list(p)[:3] for p in data["policies"]] == [["target", "account", "region"]]
    assert [{k: v for k, v in p.items() if k not in _PAIR} for p in data["policies"]] == [
        {
            "policy": "prod-nightly",
            "snapshots": 3,
            "sized": 3,
            "size_mb": round(sum(t for sid, (t, _) in sizes.items() if sid != deleted[0]), 1),
            "incremental_mb": kept_inc,
        }
    ]


_PAIR = ("target", "account", "region")


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "account"}


def test_store_records_sizes_per_run_and_prunes_old_ones(tmp_path: Path) -> None:
    from snapworker.adapters.store.repository import PolicySizes, open_store

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        t0 = datetime(2026, 11, 1, tzinfo=UTC)
        run = store.begin_run("run", 1, t0)
        store.record_sizes(run, [PolicySizes("p", 3, 2, 2048.0, 100.5)], t0)
        store.finish_run(run, "ok", 0, 0, {}, None, t0)
        seen = store.latest_sizes()
        assert seen is not None and seen.run_id == run
        assert seen.items == (PolicySizes("p", 3, 2, 2048.0, 100.5),)
        assert store.prune(t0 + timedelta(days=1)) == 2  # the run and its sizes row
        assert store.latest_sizes() is None
    finally:
        store.close()
