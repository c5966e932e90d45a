"""What the sandbox records for tests to read: the Redshift calls that reached moto, by
operation name (errors included), and every password GetClusterCredentials issued, so that a
test can bound a run's calls and search logs, reports and the state DB for a secret."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from moto.core.responses import BaseResponse

_LOCK = threading.Lock()
_COUNTS: Counter[str] = Counter()
_ISSUED_PASSWORDS: list[str] = []


def call_counts() -> dict[str, int]:
    """Redshift API calls that reached moto since the last reset, by operation name."""
    with _LOCK:
        return dict(_COUNTS)


def reset_call_counts() -> None:
    with _LOCK:
        _COUNTS.clear()


def counting_call_action(self: Any) -> Any:
    """``RedshiftResponse.call_action``, counting the action first (installed by ``install``)."""
    with _LOCK:
        _COUNTS[str(self._get_action() or "?")] += 1
    return BaseResponse.call_action(self)


def remember_password(password: str) -> None:
    with _LOCK:
        _ISSUED_PASSWORDS.append(password)


def issued_passwords() -> list[str]:
    """Every DbPassword GetClusterCredentials returned since the last reset (for tests)."""
    with _LOCK:
        return list(_ISSUED_PASSWORDS)


def reset_issued_passwords() -> None:
    with _LOCK:
        _ISSUED_PASSWORDS.clear()
