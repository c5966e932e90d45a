"""What the wall-time benchmarks share: the sandbox server, the commands' environment, timing.

``bench/startup.py`` and ``bench/vs_custodian.py`` time whole commands against moto's server
(``python -m snapworker.sandbox.server serve``). Both run every command with byte-code caching
on, in a scratch ``PYTHONPYCACHEPREFIX`` their warm-up runs fill: an installed wheel ships
compiled modules, and a ``PYTHONDONTWRITEBYTECODE`` environment (this machine sets it) would
otherwise make every run of an editable checkout recompile snapworker's own modules
(~60 ms) while boto3's, and c7n's, come precompiled from pip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_sandbox(*, seed: bool) -> tuple[subprocess.Popen[str], str]:
    """moto's server with snapworker's extension (``seed``: the demo estate, else empty) and
    its endpoint URL. The caller terminates it."""
    cmd = [sys.executable, "-m", "snapworker.sandbox.server", "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--seed"] if seed else cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return proc, line.split()[1]


def command_env(work: Path, endpoint: str) -> dict[str, str]:
    """This environment without AWS or snapworker settings, pointed at ``endpoint`` with
    dummy credentials, byte-code caching on in ``work/pycache`` (see the module docstring)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SNAP")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        PYTHONPYCACHEPREFIX=str(work / "pycache"),
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    return env


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    """Wall seconds of one run of ``cmd`` and its stdout; a failed run stops the benchmark."""
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}):\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
    return took, r.stdout
