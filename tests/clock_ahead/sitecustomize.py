"""Loaded (through PYTHONPATH) only by the suite run with the clock moved ahead under
libfaketime (``.ci/run``: ``FAKETIME=+400d``). It proves that no test depends on the day it
runs.

libfaketime 0.9.10 with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` makes Python 3.11's
``time.sleep`` fail at once with EINVAL (wolfcw/libfaketime#426); without that variable,
waits on the monotonic clock hang. So the monotonic clock stays real, and a sleep that fails
with EINVAL waits in ``select`` against ``time.monotonic()`` instead.
"""

from __future__ import annotations

import errno
import select
import time

_real_sleep = time.sleep


def _sleep(seconds: float) -> None:
    try:
        _real_sleep(seconds)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        end = time.monotonic() + max(0.0, seconds)
        while (left := end - time.monotonic()) > 0:
            select.select([], [], [], left)


time.sleep = _sleep  # type: ignore[assignment]  # same behaviour, narrower annotation
