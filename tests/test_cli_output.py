"""What an operator sees: JSON log lines off a terminal, readable ones and a progress bar on
one, the Markdown report, and the standard AWS chain (AWS_PROFILE) honoured."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys

import pytest

from tests.e2e_support import Sandbox, plan_json

pytestmark = pytest.mark.e2e


def seed_many(box: Sandbox, clusters: int = 4, per_cluster: int = 4) -> None:
    for c in range(clusters):
        cid = f"prod-{chr(ord('a') + c)}"
        box.cluster(cid, env="prod")
        for d in range(1, per_cluster + 1):
            box.automated(cid, d)


def test_logs_are_json_lines_off_a_terminal(sandbox: Sandbox) -> None:
    seed_many(sandbox, 1, 2)
    r = sandbox.cli("run")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    actions = [x for x in lines if x["event"] == "action"]
    assert len(actions) == 2
    assert {a["action"] for a in actions} == {"copy"}
    assert all(a["level"] == "info" and a["timestamp"].endswith("Z") for a in actions)
    # the report is on stdout, not mixed with the logs
    assert "2 succeeded, 0 failed" in r.stdout
    assert "{" not in r.stdout


def run_on_terminal(box: Sandbox, *args: str) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return (exit code, screen)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapworker", *args],
        env=box.env(TERM="xterm", COLUMNS="120"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=box.tmp,
        close_fds=True,
    )
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=60), out.decode(errors="replace")


def test_readable_logs_and_a_progress_bar_on_a_terminal(sandbox: Sandbox) -> None:
    seed_many(sandbox, 4, 4)  # 16 copies: above the progress bar's threshold
    code, screen = run_on_terminal(sandbox, "run")
    assert code == 0, screen
    assert "applying" in screen  # rich's progress bar, on the terminal
    assert '"event": "action"' not in screen  # not JSON on a terminal
    assert "action" in screen and "copy" in screen
    assert "16 succeeded, 0 failed" in screen


def test_markdown_and_json_reports(sandbox: Sandbox) -> None:
    seed_many(sandbox, 1, 2)
    md = sandbox.cli("plan", "--format", "markdown")
    assert md.returncode == 0
    assert md.stdout.startswith("# snapworker plan")
    assert "## prod-nightly / prod-a" in md.stdout
    assert "| copy |" in md.stdout
    data = plan_json(sandbox.cli("plan", "--format", "json"))
    assert set(data) >= {"generated_at", "actions", "kept"}
    assert data["generated_at"].endswith("Z")


def test_aws_profile_from_the_standard_chain(sandbox: Sandbox) -> None:
    seed_many(sandbox, 1, 1)
    creds = sandbox.tmp / "credentials"
    creds.write_text("[drill]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    conf = sandbox.tmp / "aws-config"
    conf.write_text("[profile drill]\nregion = us-east-1\n")
    env = sandbox.env(
        AWS_PROFILE="drill",
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_CONFIG_FILE=str(conf),
    )
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        env.pop(key)
    r = subprocess.run(
        [sys.executable, "-m", "snapworker", "plan", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=sandbox.tmp,
    )
    assert r.returncode == 0, r.stderr
    assert [a["action"] for a in json.loads(r.stdout)["actions"]] == ["copy"]
    # and without any credentials at all: a clear error, exit 2, no traceback
    for key in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(key)
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(sandbox.tmp / "none")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    r = subprocess.run(
        [sys.executable, "-m", "snapworker", "plan"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=sandbox.tmp,
    )
    assert r.returncode == 2, r.stderr
    assert "no AWS credentials" in r.stderr and "Traceback" not in r.stderr
