"""Deliberate crash points for the crash-anywhere tests, installed from the test side as
botocore event hooks: the product's gateway carries no test hook.

``SNAPWORKER_KILL_AT=before:N`` (or ``after:N``) makes the process SIGKILL itself just
before (or just after) its N-th mutating Redshift call of the process (the operations in
``snapworker.adapters.aws.redshift.MUTATIONS``): "before" is after the journal entry was
committed and before the request is sent (``before-call.redshift.<Op>``); "after" is once
AWS answered with success and before the outcome is recorded (``after-call.redshift.<Op>``
with an HTTP status below 300). An error answer kills nothing, as the gateway's own crash
points did not fire "after" a failed call. One difference from those: a mutation that
tenacity retries (a throttle that outlasted botocore's own retries) counts once per attempt
here, since each attempt is a client call; the crash scenarios inject no faults, so their
counts are the same.

The hooks go on every client the process makes (``botocore.session.Session.create_client``
is wrapped), so they see the clients the product builds for itself. A test harness runs a
scenario once per kill point (see ``tests/rigs/crash_cli.py``) and checks that a rerun
converges to the state of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import botocore.session

from snapworker.adapters.aws.redshift import MUTATIONS

ENV = "SNAPWORKER_KILL_AT"
STAGES = ("before", "after")


def parse(spec: str) -> tuple[str, int] | None:
    """``before:N`` / ``after:N`` -> (stage, N); anything else (or empty) -> None."""
    stage, _, n = spec.partition(":")
    if stage not in STAGES or not n.isdigit() or int(n) < 1:
        return None
    return stage, int(n)


class KillPoint:
    """Counts the mutations a process makes and kills it at the chosen one."""

    def __init__(self, stage: str, n: int) -> None:
        self.target = (stage, n)
        self.count = 0
        self.lock = threading.Lock()  # mutations of several clusters may run on a thread pool

    def _reached(self, stage: str) -> None:
        with self.lock:
            if stage == "before":
                self.count += 1
            hit = (stage, self.count) == self.target
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    def before_call(self, model: Any, **_: Any) -> None:
        if model.name in MUTATIONS:
            self._reached("before")

    def after_call(self, model: Any, http_response: Any = None, **_: Any) -> None:
        status = getattr(http_response, "status_code", 500)
        if model.name in MUTATIONS and status < 300:
            self._reached("after")


def install(spec: str | None = None) -> KillPoint | None:
    """Hook every botocore client made from now on (spec default: ``$SNAPWORKER_KILL_AT``);
    None, and nothing hooked, when no kill point is asked for. Idempotent per process."""
    target = parse(os.environ.get(ENV, "") if spec is None else spec)
    if target is None:
        return None
    session_cls: Any = botocore.session.Session
    if getattr(session_cls, "_snapworker_kill_point", None) is not None:
        point: KillPoint = session_cls._snapworker_kill_point
        return point
    point = KillPoint(*target)
    create_client = session_cls.create_client

    def hooked_create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        events = client.meta.events
        events.register("before-call.redshift", point.before_call, unique_id="sw-kill-before")
        events.register("after-call.redshift", point.after_call, unique_id="sw-kill-after")
        return client

    session_cls.create_client = hooked_create_client
    session_cls._snapworker_kill_point = point
    return point
