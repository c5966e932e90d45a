"""The README's first command: `snapworker demo` runs the main job on the embedded sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from snapworker.entrypoints.demo import DEMO_CONFIG

ROOT = Path(__file__).resolve().parent.parent


def test_demo_config_is_the_shipped_sandbox_config() -> None:
    assert (ROOT / "config" / "sandbox.yaml").read_text() == DEMO_CONFIG


def test_demo_plans_runs_and_converges(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AWS_")}
    r = subprocess.run(
        [sys.executable, "-m", "snapworker", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "== snapworker plan (dry run: nothing is changed) ==" in out
    assert "policy prod-nightly  cluster prod-a" in out
    assert "== snapworker run #1 ==" in out
    assert "shared" in out and "copied" in out
    assert "nothing to do; the account is on policy" in out
    # unowned snapshots of the sandbox are never touched
    assert "manual-keep-forever" not in out.split("== snapworker run #1 ==")[1]
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())  # the demo's state DB lives in a temp dir
