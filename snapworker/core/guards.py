"""The executor's safety checks, as pure functions of what it just read.

Deleting a backup is the one thing that cannot be undone, so the executor re-reads a
snapshot right before deleting it and asks :func:`delete_refusal`; it adopts an id that
already exists only when :func:`may_adopt` says the snapshot is provably the worker's; and
after a crash it completes a journal entry only when :func:`effect_visible` says AWS already
shows what the interrupted call did. These checks live here, apart from the I/O, so that
each is plain data in, a decision out, and tested (and mutation-tested) on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from snapworker.core.model import TAG_POLICY, PendingEntry, Snapshot, State
from snapworker.core.ownership import Renames, owner_of

__all__ = ["delete_refusal", "effect_visible", "made_pending", "may_adopt", "owned_by"]


def made_pending(state: State) -> dict[str, PendingEntry]:
    """The pending create/copy journal entries by snapshot id: they prove ownership of what a
    crash left untagged (see ``core.ownership``)."""
    return {e.snapshot_id: e for e in state.pending if e.kind in ("create", "copy")}


def owned_by(
    snap: Snapshot, policy: str, state: State, account: str | None, renames: Renames | None = None
) -> bool:
    """Whether ``policy`` provably owns ``snap`` (tags, state DB or journal; a former name's
    only through ``renames``, the config's ``formerly``)."""
    own = owner_of(snap, state, made_pending(state), account, renames or {})
    return own is not None and own.record.policy == policy


def delete_refusal(
    snap: Snapshot,
    policy: str,
    hold_tag: str,
    state: State,
    account: str | None,
    renames: Renames | None = None,
) -> str | None:
    """Why ``snap``, just re-read from AWS, must not be deleted for ``policy``; None if it
    may be: a manual snapshot the policy owns, not held, shared with no account at all (every
    grant is revoked first), and ``available``."""
    if snap.type != "manual":
        return f"not deleted: {snap.id} is an automated snapshot"
    if not owned_by(snap, policy, state, account, renames):
        return f"not deleted: {snap.id} is not owned by policy {policy}"
    if hold_tag in snap.tags:
        return f"not deleted: {snap.id} is held ({hold_tag})"
    if snap.accounts:
        return f"not deleted: {snap.id} is still authorized for {', '.join(snap.accounts)}"
    if not snap.available:
        return f"not deleted: {snap.id} is '{snap.status}', not available"
    return None


def may_adopt(
    snap: Snapshot | None,
    policy: str,
    state: State,
    account: str | None,
    renames: Renames | None = None,
) -> bool:
    """A create or copy found its target id taken: adopt the snapshot only if its tags (not
    just its name) prove it is this policy's."""
    return snap is not None and snap.tags != {} and owned_by(snap, policy, state, account, renames)


def effect_visible(entry: PendingEntry, snapshots: Mapping[str, Snapshot]) -> bool:
    """Whether the listing shows the effect of the call a crash left ``entry`` pending on."""
    snap = snapshots.get(entry.snapshot_id)
    if entry.kind in ("create", "copy"):
        return snap is not None and snap.type == "manual" and snap.cluster == entry.cluster
    if entry.kind == "share":
        return snap is not None and entry.account in snap.accounts
    if entry.kind == "revoke":
        return snap is None or entry.account not in snap.accounts
    if entry.kind == "delete":
        return snap is None
    if entry.kind == "tag":
        # The tags name the entry's policy (a re-tag under ``formerly`` replaces another name).
        return snap is not None and snap.tags.get(TAG_POLICY) == entry.policy
    return False
