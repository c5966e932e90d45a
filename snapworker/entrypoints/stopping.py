"""A graceful stop on SIGTERM or SIGINT, shared by `run` and the daemon.

The first signal sets :attr:`GracefulStop.event`: the tick starts no new action (its
``should_stop``), the actions in flight finish and are journalled. The waits of the gateway
are cut short meanwhile: the rate limiter's pacing returns at once (:meth:`pace`: the action
already decided goes ahead), a retry backoff raises instead of trying again (:meth:`backoff`:
the action is journalled as failed, "snapworker is stopping", and the next tick or run does it
again).

With ``second_exits`` (`run`), a second signal ends the process at once, with 128 + the signal
number of the first: whatever was in flight stays ``pending`` in the journal, and the next run
reconciles it (its effect is visible in AWS) or does it again (same idempotency key), so
nothing is done twice. The run's row is then left ``running``; ``status`` shows it
``interrupted`` once its process is gone (see ``adapters.store.runs``).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from snapworker.adapters.aws.redshift import STOPPING, AwsError

__all__ = ["SIGNALS", "STOPPING", "GracefulStop"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)

FIRST_SIGNAL = (
    "snapworker: {}: stopping: no new action starts, the actions in flight finish "
    "(a second signal exits at once)\n"
)
SECOND_SIGNAL = (
    b"snapworker: second signal: exiting now; the actions in flight stay pending in the "
    b"journal, the next run completes them\n"
)


class GracefulStop:
    """The stop requested by a signal (or by :meth:`request`)."""

    def __init__(self, *, second_exits: bool = False, log: Any = None) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self.second_exits = second_exits
        self.log = log
        self._previous: dict[int, Any] = {}

    def install(self) -> GracefulStop:
        """Handle SIGTERM and SIGINT from now on (main thread only)."""
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.second_exits:
            # Straight to the file descriptor: the handler may run in the middle of a print.
            if self.event.is_set():
                os.write(2, SECOND_SIGNAL)
                os._exit(self.exit_code or 128 + signum)
            name = signal.Signals(signum).name
            os.write(2, FIRST_SIGNAL.format(name).encode())
        self.request(signum)

    def request(self, signum: int | None = None) -> None:
        if not self.event.is_set():
            self.signum = signum
            if self.log is not None:
                self.log.info("stopping: finishing the action in flight")
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    @property
    def exit_code(self) -> int | None:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM); None: no signal."""
        return 128 + self.signum if self.signum is not None else None

    def pace(self, seconds: float) -> None:
        """The rate limiter's wait: returns early when stopping (the action goes ahead)."""
        self.event.wait(seconds)

    def backoff(self, seconds: float) -> None:
        """The gateway's retry backoff: returns early, with an error, when stopping."""
        if self.event.wait(seconds):
            raise AwsError(
                "Retry",
                STOPPING,
                "not retried: snapworker is stopping (the next tick or run does it again)",
            )
