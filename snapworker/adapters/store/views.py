"""What the store's reads for ``status`` return: frozen records, detached from the database
(the SQLModel rows never leave a session).

Each names the (target, region) pair it belongs to: ``target``, ``owner_account`` (the account
owning the snapshots; ``account`` stays the grantee where a view has one) and ``region``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "GrantView",
    "JournalView",
    "OwnedSummary",
    "OwnedView",
    "RunView",
    "VerificationView",
]


@dataclass(frozen=True)
class OwnedView:
    snapshot_id: str
    policy: str
    cluster: str
    made_for: str
    source_id: str | None
    data_time: datetime | None
    fire_time: datetime | None
    recorded_at: datetime
    adopted: bool
    deleted_at: datetime | None
    deleted_reason: str | None = None  # None: deleted by snapworker (when deleted_at is set)
    target: str | None = None  # the config's name of the pair's account (None: not known)
    owner_account: str = ""  # the account owning the snapshots ('' : a row from before 0006)
    region: str = ""


@dataclass(frozen=True)
class GrantView:
    snapshot_id: str
    account: str
    granted_at: datetime | None  # None: a revoke of a grant the worker did not make
    revoked_at: datetime | None
    revoked_reason: str | None = None  # None: revoked by snapworker (when revoked_at is set)
    target: str | None = None  # the config's name of the pair's account (None: not known)
    owner_account: str = ""  # the account owning the snapshots ('' : a row from before 0006)
    region: str = ""


@dataclass(frozen=True)
class OwnedSummary:
    """Owned snapshots (live and deleted) by policy, then cluster, oldest data first; the
    grants still open; and the grants revoked outside snapworker, in the order first missed."""

    owned: Mapping[str, Mapping[str, tuple[OwnedView, ...]]]
    open_grants: tuple[GrantView, ...]
    revoked_outside: tuple[GrantView, ...] = ()


@dataclass(frozen=True)
class JournalView:
    id: int
    run_id: int
    key: str
    policy: str
    cluster: str
    kind: str
    snapshot_id: str
    account: str | None
    source_id: str | None
    reason: str
    status: str
    outcome: str | None
    error: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    target: str | None = None  # the config's name of the pair's account (None: not known)
    owner_account: str = ""  # the account owning the snapshots ('' : a row from before 0006)
    region: str = ""
    fence: int | None = None  # the lease's fencing counter the action was started under


@dataclass(frozen=True)
class RunView:
    id: int
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    actions_ok: int
    actions_failed: int
    api_calls: Mapping[str, int]
    error: str | None
    pid: int
    failures: tuple[JournalView, ...]  # this run's journal entries that failed
    target: str | None = None  # the config's name of the pair's account (None: not known)
    owner_account: str = ""  # the account owning the snapshots ('' : a row from before 0006)
    region: str = ""
    batch: str | None = None  # the fleet invocation whose pair runs share it


@dataclass(frozen=True)
class VerificationView:
    """A restore drill, for ``status`` (``detail``: each check's result, or the error)."""

    id: int
    policy: str
    cluster: str
    snapshot_id: str
    fire_time: datetime
    scratch_cluster: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    detail: Mapping[str, Any]
    scratch_deleted_at: datetime | None
    target: str | None = None  # the config's name of the pair's account (None: not known)
    owner_account: str = ""  # the account owning the snapshots ('' : a row from before 0006)
    region: str = ""
