"""Which (account, region) a store's rows belong to: the state DB holds every pair of a fleet.

Every table but ``lease`` carries ``owner_account`` (the AWS account that owns the snapshot;
``account`` is the grantee's column in ``grant``, ``journal`` and ``drift``) and ``region``. A
:class:`Scope` filters a repository's every query to one pair and stamps its every write;
:data:`LEGACY` is the scope of rows written before migration 0006 (``''``, ``''``) and of a
store opened without a pair, until ``StateStore.claim_unscoped`` gives them to the first pair
of the config's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists
from sqlalchemy.orm import aliased
from sqlmodel import col, func, update

from snapworker.adapters.store.engine import Database, changed
from snapworker.adapters.store.tables import (
    CopiedSourceRow,
    DriftRow,
    GrantRow,
    JournalRow,
    OwnedSnapshotRow,
    RunRow,
    SizesRow,
    SnapshotFiguresRow,
    VerificationRow,
)

__all__ = ["LEGACY", "Scope", "claim_unscoped"]


@dataclass(frozen=True)
class Scope:
    """A pair's rows: ``account`` and ``region`` key them; ``target`` (the config's name of
    the account) and ``batch`` (one fleet invocation) go on the runs it begins."""

    account: str = ""
    region: str = ""
    target: str | None = None
    batch: str | None = None
    with_legacy: bool = False
    """Read the rows of :data:`LEGACY` too, as if claimed: a dry run of the first pair
    before the first run that claims them (a dry run writes nothing, so it cannot claim)."""

    def _accounts(self) -> list[str]:
        return [self.account, ""] if self.with_legacy else [self.account]

    def _regions(self) -> list[str]:
        return [self.region, ""] if self.with_legacy else [self.region]

    def where(self, row: Any) -> tuple[Any, ...]:
        """The conditions limiting ``row``'s table (a SQLModel class) to this pair."""
        if not self.with_legacy:
            return (col(row.owner_account) == self.account, col(row.region) == self.region)
        return (
            col(row.owner_account).in_(self._accounts()),
            col(row.region).in_(self._regions()),
        )

    def where_run(self, row: Any) -> tuple[Any, ...]:
        """The same for ``run``, whose legacy rows (from before 0006) have NULL columns."""
        return (
            func.coalesce(col(row.owner_account), "").in_(self._accounts()),
            func.coalesce(col(row.region), "").in_(self._regions()),
        )

    def stamp(self) -> dict[str, str]:
        """The columns of a row written in this scope."""
        return {"owner_account": self.account, "region": self.region}

    def key(self, **rest: Any) -> dict[str, Any]:
        """A primary key (``Session.get``) within this scope."""
        return {"owner_account": self.account, "region": self.region, **rest}


LEGACY = Scope()
"""Rows from before migration 0006, and what a store opened without a pair reads and writes."""


_KEYED: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (OwnedSnapshotRow, ("snapshot_id",)),
    (SnapshotFiguresRow, ("snapshot_id",)),
    (CopiedSourceRow, ("policy", "source_id")),
)
"""The tables whose primary key leads with the pair, with the rest of their key."""
_ROWS: tuple[Any, ...] = (GrantRow, JournalRow, DriftRow, SizesRow, VerificationRow)


def claim_unscoped(db: Database, account: str, region: str, target: str | None = None) -> int:
    """Move every row of :data:`LEGACY` to (``account``, ``region``) in one transaction (see
    ``StateStore.claim_unscoped``); how many rows moved."""
    if not account or not region:
        raise ValueError("rows are claimed for an account and a region")
    pair = {"owner_account": account, "region": region}
    moved = 0
    with db.session("claim the rows from before the fleet", write=True) as s:
        for row, key in _KEYED:
            other = aliased(row)
            taken = exists().where(
                col(other.owner_account) == account,
                col(other.region) == region,
                *(getattr(other, k) == getattr(row, k) for k in key),
            )
            moved += changed(s, update(row).where(*LEGACY.where(row), ~taken).values(**pair))
        for row in _ROWS:
            moved += changed(s, update(row).where(*LEGACY.where(row)).values(**pair))
        moved += changed(
            s,
            update(RunRow)
            .where(*LEGACY.where_run(RunRow))
            .values(**pair, target=func.coalesce(col(RunRow.target), target)),
        )
    return moved
