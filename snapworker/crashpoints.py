"""Deliberate crash points, for the crash-anywhere tests (off unless the env var is set).

``SNAPWORKER_KILL_AT=before:N`` (or ``after:N``) makes the process SIGKILL itself just
before (or just after) its N-th mutating AWS call of the process: "before" is after the
journal entry was committed and before the call; "after" is after AWS answered and before
the outcome is recorded. The test harness runs a scenario once per kill point and checks
that a rerun converges to the state of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("SNAPWORKER_KILL_AT", "")
_count = 0
_lock = threading.Lock()  # mutations of several clusters may run on a thread pool


def _target() -> tuple[str, int] | None:
    if not _SPEC:
        return None
    stage, _, n = _SPEC.partition(":")
    return (stage, int(n)) if n.isdigit() else None


_TARGET = _target()


def mutation(stage: str) -> None:
    """Called by the gateway around each mutating call: ``stage`` is "before" or "after"."""
    global _count
    if _TARGET is None:
        return
    with _lock:
        if stage == "before":
            _count += 1
        hit = (stage, _count) == _TARGET
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)
