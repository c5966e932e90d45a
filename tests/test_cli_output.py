"""What an operator sees: JSON log lines off a terminal, readable ones and a progress bar on
one, the Markdown report, the standard AWS chain (AWS_PROFILE, AWS_REGION) honoured, and an
AWS setup that does not work (no region, no or expired credentials, a bad profile, an
unreachable endpoint) reported in one line, never a traceback."""

from __future__ import annotations

import http.server
import json
import os
import pty
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e_support import CONFIG, Sandbox, plan_json

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


def seed_pages(box: Sandbox, snapshots: int = 250) -> None:
    """An estate whose snapshot listing takes several pages (100 a page)."""
    box.cluster("prod-a", env="prod")
    for i in range(snapshots):
        box.manual(f"dba-{i:04d}", "prod-a", 1 + i / 24)


def test_a_listing_of_several_pages_shows_progress_on_a_terminal(sandbox: Sandbox) -> None:
    seed_pages(sandbox)
    code, screen = run_on_terminal(sandbox, "plan")
    assert code == 0, screen
    # rich's bar while DescribeClusterSnapshots pages in (100 a page), counting; then the plan
    assert "listing snapshots" in screen
    assert "250 so far" in screen
    assert "Nothing to do." in screen
    # run too, and its bar is gone before the plan's line
    code, screen = run_on_terminal(sandbox, "run")
    assert code == 0, screen
    assert screen.index("250 so far") < screen.index("plan: 0 actions")


def test_no_listing_progress_off_a_terminal(sandbox: Sandbox) -> None:
    seed_pages(sandbox)
    for args in (("plan",), ("plan", "--format", "json"), ("run",)):
        r = sandbox.cli(*args)
        assert r.returncode == 0, r.stderr
        assert "listing snapshots" not in r.stderr + r.stdout
        assert "\x1b[" not in r.stderr  # no terminal control codes at all


def test_markdown_and_json_reports(sandbox: Sandbox) -> None:
    seed_many(sandbox, 1, 2)
    md = sandbox.cli("plan", "--format", "markdown")
    assert md.returncode == 0
    assert md.stdout.startswith("# snapworker plan")
    assert "### prod-nightly / prod-a" in md.stdout
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


# -- the AWS setup: region, credentials, endpoint, profile (issue 16, defect 1) ---------------

COMMANDS = {
    "plan": ("plan",),
    "run": ("run",),
    "hold": ("hold", "sw-prod-nightly-x", "--reason", "audit"),
    "release": ("release", "sw-prod-nightly-x"),
}


def without_region(box: Sandbox) -> None:
    """The config names no region: the environment (or the profile) must."""
    box.write_config(CONFIG.replace("aws:\n  region: us-east-1\n", ""))
    assert "region:" not in box.config.read_text()


def cli_env(box: Sandbox, *args: str, drop: tuple[str, ...] = (), **extra: str) -> Any:
    env = box.env(AWS_EC2_METADATA_DISABLED="true", **extra)
    for key in drop:
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "snapworker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=box.tmp,
    )


def one_clean_line(r: Any, code: int, *says: str) -> None:
    """Exit ``code``, no traceback, and one ``snapworker:`` line saying each of ``says``."""
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("snapworker: ")]
    assert len(lines) == 1, r.stderr
    for text in says:
        assert text in lines[0], r.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_aws_region_alone_is_honoured(sandbox: Sandbox, command: str) -> None:
    seed_many(sandbox, 1, 1)
    without_region(sandbox)
    r = cli_env(sandbox, *COMMANDS[command], drop=("AWS_DEFAULT_REGION",), AWS_REGION="us-east-1")
    assert "Traceback" not in r.stderr and "no AWS region" not in r.stderr, r.stderr
    if command in ("plan", "run"):
        assert r.returncode == 0, r.stderr
    else:  # it reached AWS: the snapshot is not there, a refusal before any change
        one_clean_line(r, 2, "no snapshot 'sw-prod-nightly-x'")


def test_aws_region_wins_over_aws_default_region(sandbox: Sandbox) -> None:
    seed_many(sandbox, 1, 1)
    without_region(sandbox)
    r = cli_env(
        sandbox, "plan", "-f", "json", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="eu-west-3"
    )
    assert [a["action"] for a in plan_json(r)["actions"]] == ["copy"]  # us-east-1's estate


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_region_at_all_is_a_clean_exit_2(sandbox: Sandbox, command: str) -> None:
    without_region(sandbox)
    conf = sandbox.tmp / "aws-config"
    conf.write_text("[default]\n")
    r = cli_env(
        sandbox,
        *COMMANDS[command],
        drop=("AWS_REGION", "AWS_DEFAULT_REGION"),
        AWS_CONFIG_FILE=str(conf),
    )
    one_clean_line(r, 2, "no AWS region")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_profile_name_is_a_clean_exit_2(sandbox: Sandbox, command: str) -> None:
    conf = sandbox.tmp / "aws-config"
    conf.write_text("[profile drill]\nregion = us-east-1\n")
    r = cli_env(sandbox, *COMMANDS[command], AWS_PROFILE="nope", AWS_CONFIG_FILE=str(conf))
    one_clean_line(r, 2, "AWS profile", "nope")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_credentials_is_a_clean_exit_2(sandbox: Sandbox, command: str) -> None:
    r = cli_env(
        sandbox,
        *COMMANDS[command],
        drop=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"),
        AWS_SHARED_CREDENTIALS_FILE=str(sandbox.tmp / "none"),
        AWS_CONFIG_FILE=str(sandbox.tmp / "none"),
    )
    one_clean_line(r, 2, "no AWS credentials")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unreachable_endpoint_is_a_clean_exit_1(sandbox: Sandbox, command: str) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli_env(sandbox, *COMMANDS[command], AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    one_clean_line(r, 1, f"127.0.0.1:{port}")


class _ExpiredToken(http.server.BaseHTTPRequestHandler):
    """Answers every request as AWS does once the session token expired."""

    def do_POST(self) -> None:  # Redshift's query protocol
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = (
            b'<ErrorResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/"><Error>'
            b"<Type>Sender</Type><Code>ExpiredToken</Code>"
            b"<Message>The security token included in the request is expired</Message>"
            b"</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        )
        self.send_response(400)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def expired_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ExpiredToken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_expired_token_is_a_clean_exit_2(
    sandbox: Sandbox, expired_endpoint: str, command: str
) -> None:
    r = cli_env(sandbox, *COMMANDS[command], AWS_ENDPOINT_URL=expired_endpoint)
    one_clean_line(r, 2, "ExpiredToken", "credentials")
