"""The README's first command: `snapworker demo` runs the main job on the embedded sandbox,
then the dangerous half: the sandbox's clock moves on, retention expires copies, and each is
revoked, then deleted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from snapworker.entrypoints.demo import DEMO_CONFIG

ROOT = Path(__file__).resolve().parent.parent


def test_demo_config_is_the_shipped_sandbox_config() -> None:
    assert (ROOT / "config" / "sandbox.yaml").read_text() == DEMO_CONFIG


def test_demo_plans_runs_and_converges(tmp_path: Path) -> None:
    cwd, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["TMPDIR"] = str(tmpdir)
    r = subprocess.run(
        [sys.executable, "-m", "snapworker", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "== snapworker plan (dry run: nothing is changed) ==" in out
    assert "policy prod-nightly  cluster prod-a" in out
    assert "== snapworker run #1 ==" in out
    assert "shared" in out and "copied" in out
    # unowned snapshots of the sandbox are never touched
    assert "manual-keep-forever" not in out.split("== snapworker run #1 ==")[1]
    assert "Traceback" not in r.stderr
    assert not list(cwd.iterdir())  # the demo's state DB lives in a temp dir

    # the dangerous half: later, each expired copy's grants are revoked, then it is deleted
    later = out.split("days later (the sandbox's clock only)")[1]
    revoked = re.findall(r"^  ok      revoke (\S+) (\S+)  \(revoked\)$", later, re.M)
    deleted = re.findall(r"^  ok      delete (\S+)  \(deleted\)$", later, re.M)
    assert deleted and {s for s, _ in revoked} == set(deleted)
    lines = later.splitlines()
    for sid in deleted:
        revokes = [i for i, line in enumerate(lines) if f"revoke {sid} " in line]
        delete = next(i for i, line in enumerate(lines) if f"delete {sid}  (deleted)" in line)
        assert len(revokes) == 2 and max(revokes) < delete  # both grants, before the delete
    # it converges again
    assert later.rstrip().count("nothing to do; the account is on policy") == 1
    assert out.count("nothing to do; the account is on policy") == 2

    # sizes: per snapshot, totals, and what the deletions free (no price: no money figure)
    plan_later = later.split("== snapworker run #")[0]
    assert re.search(r"  keep    \S+\s+\S+ \S+\s+\d+\.\d GB \(\+\d+\.\d GB\)", plan_later)
    assert re.search(r"policy prod-nightly total: \d+ snapshots, about .* stored", plan_later)
    assert re.search(rf"deleting {len(deleted)} frees about \d+\.\d GB", plan_later)
    assert "deleting one frees about its incremental size" in plan_later
    assert "per month" not in out

    # the HTML report, written to a file whose path it prints
    m = re.search(r"^== snapworker report --html: (\S+) ==$", out, re.M)
    assert m, out[-500:]
    report = Path(m.group(1))
    assert report.is_file() and report.is_relative_to(tmpdir)
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert all(f'data-snapshot="{sid}"' not in page for sid in deleted)  # gone now
    assert " GB (+" in page  # each snapshot's label: its size
    assert re.search(r'<p class="totals">total: \d+ snapshots, about [\d.]+ GB stored', page)
