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
_PAIR_COUNTS: Counter[tuple[str, str, str, str]] = Counter()
_ISSUED_PASSWORDS: list[str] = []


def call_counts(account: str | None = None, region: str | None = None) -> dict[str, int]:
    """Redshift API calls that reached moto since the last reset, by operation name: all of
    them, or those of one account and/or region."""
    with _LOCK:
        if account is None and region is None:
            return dict(_COUNTS)
        out: Counter[str] = Counter()
        for (acct, reg, op, _), n in _PAIR_COUNTS.items():
            if (account is None or acct == account) and (region is None or reg == region):
                out[op] += n
        return dict(out)


def call_counts_by_pair() -> dict[tuple[str, str, str, str], int]:
    """Redshift API calls that reached moto since the last reset, by (account, region,
    operation, target): the account moto served the call in (an assumed role's), the
    region, and the target as the fault log names it (the snapshot, ``SNAPSHOT GRANTEE`` for a
    share or revoke, ``page MARKER`` for a listing)."""
    with _LOCK:
        return dict(sorted(_PAIR_COUNTS.items()))


def reset_call_counts() -> None:
    with _LOCK:
        _COUNTS.clear()
        _PAIR_COUNTS.clear()


def request_target(params: dict[str, str]) -> tuple[str, str]:
    """(snapshot id, request key) of a Redshift request: one key per action's call (the
    snapshot; with the grantee for a share or revoke; ``page MARKER`` for a listing)."""
    snapshot = (
        params.get("SnapshotIdentifier")
        or params.get("TargetSnapshotIdentifier")
        or params.get("ResourceName", "").rsplit("/", 1)[-1]
    )
    key = snapshot
    if params.get("AccountWithRestoreAccess"):
        key += " " + params["AccountWithRestoreAccess"]
    if not snapshot:
        key = "page " + params.get("Marker", "1")
    return snapshot, key


def counting_call_action(self: Any) -> Any:
    """``RedshiftResponse.call_action``, counting the action first, in all and by (account,
    region, operation, target) (installed by ``install``)."""
    action = str(self._get_action() or "?")
    query = getattr(self, "querystring", None) or {}
    params = {k: str(v[0]) for k, v in query.items() if isinstance(v, list) and v}
    key = (str(self.current_account), str(self.region), action, request_target(params)[1])
    with _LOCK:
        _COUNTS[action] += 1
        _PAIR_COUNTS[key] += 1
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
