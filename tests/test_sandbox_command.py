"""`snapworker sandbox`: the demo estate served on moto's server, driven by hand. Through the
real CLI in a subprocess: start it, read the environment it prints, run other commands with
that environment, stop it with Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e_support import ROOT

pytestmark = pytest.mark.e2e


def clean_env() -> dict[str, str]:
    """This environment without AWS or snapworker settings (as a fresh shell would be)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAPWORKER_"))}


def snapworker(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapworker", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def running_sandbox(cwd: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """The sandbox command, and its output up to the ``export`` line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "snapworker", "sandbox", *args],
        env=clean_env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = proc.stdout
    assert out is not None
    stdout: queue.Queue[str] = queue.Queue()  # a thread reads: select() misses buffered lines

    def read() -> None:
        for line in out:
            stdout.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("export "):
            try:
                lines.append(stdout.get(timeout=60).rstrip("\n"))
            except queue.Empty:
                raise AssertionError(f"no export line in time: {lines}") from None
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def exported(line: str) -> dict[str, str]:
    words = shlex.split(line)
    assert words[0] == "export"
    return dict(w.split("=", 1) for w in words[1:])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_sandbox_serves_the_demo_estate_to_other_commands(tmp_path: Path, stop: int) -> None:
    with running_sandbox(tmp_path, "--port", "0") as (proc, lines):
        env = exported(lines[-1])
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
        assert env["AWS_REGION"] == "us-east-1"
        config = Path(env["SNAPWORKER_CONFIG"])
        assert config.is_file()

        # every other command, with that environment and the config it wrote
        plan = snapworker("plan", "-c", str(config), env={**clean_env(), **env}, cwd=tmp_path)
        assert plan.returncode == 0, plan.stderr
        assert "policy prod-nightly  cluster prod-a" in plan.stdout
        assert "policy prod-nightly  cluster prod-b" in plan.stdout
        as_json = snapworker("plan", "-f", "json", env={**clean_env(), **env}, cwd=tmp_path)
        assert as_json.returncode == 0, as_json.stderr
        clusters = {a["cluster"] for a in json.loads(as_json.stdout)["actions"]}
        assert clusters == {"prod-a", "prod-b"}  # dev-a is not selected by the demo policy
        assert not list(tmp_path.iterdir())  # its state DB lives beside its config

        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "Traceback" not in err and "stopped" in err
        assert not config.exists()  # the temp dir went with it


def test_sandbox_without_moto_says_to_install_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['moto'] = None  # as if the sandbox extra were not installed\n"
        "sys.argv = ['snapworker', 'sandbox', '--port', '0']\n"
        "from snapworker.entrypoints.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "snapworker sandbox needs moto: pip install 'snapworker[sandbox]'"
    ]
    assert done.stdout == ""


def test_sandbox_on_a_busy_port_exits_2_naming_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        done = snapworker("sandbox", "--port", str(port), env=clean_env(), cwd=tmp_path)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_sandbox_help_documents_its_default_port() -> None:
    done = snapworker("sandbox", "--help", env=clean_env(), cwd=ROOT)
    assert done.returncode == 0
    assert "5055" in done.stdout and "Ctrl-C" in done.stdout
    assert "5055" in (ROOT / "README.md").read_text()
