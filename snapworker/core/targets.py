"""The fleet: which (target, region) pairs the worker covers, and which policies apply to each.

A *target* is an AWS account reached with one set of credentials (the worker's own, or a role
it assumes); a *pair* is one target in one region. Everything the worker does happens within
one pair: its listing, its plan, its state rows (keyed by account and region), its lease.
Pure: names and globs in, pairs out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import NamedTuple

from snapworker.core.model import Plan

__all__ = [
    "DEFAULT_TARGET",
    "OrgAccount",
    "OrgTarget",
    "Pair",
    "PairError",
    "PairPlan",
    "matches",
    "org_pairs",
    "org_targets",
    "select_pairs",
]

DEFAULT_TARGET = "default"
"""The name of the one target of a config without ``targets:`` (the credentials' own account
in ``aws.region``)."""


@dataclass(frozen=True, slots=True, order=True)
class Pair:
    """One target in one region: the unit of work, of isolation, of state and of leasing.

    ``account`` is None until known: a target on the worker's own credentials learns it from
    STS GetCallerIdentity; a role's account is in its ARN; Organizations lists it."""

    target: str
    region: str
    account: str | None = None
    role_arn: str | None = None
    external_id: str | None = None

    @property
    def key(self) -> str:
        """``TARGET/REGION``: how messages, leases and metrics name the pair."""
        return f"{self.target}/{self.region}"


def matches(name: str, globs: Iterable[str] | None) -> bool:
    """Whether ``name`` matches any of ``globs`` (shell-style, case-sensitive); no globs (None
    or empty) matches everything."""
    globs = list(globs or ())
    return not globs or any(fnmatchcase(name, g) for g in globs)


def select_pairs(pairs: Sequence[Pair], globs: Iterable[str] | None) -> list[Pair]:
    """The pairs whose target name matches ``globs`` (``--target``), in their order."""
    globs = list(globs or ())
    return [p for p in pairs if matches(p.target, globs)]


@dataclass(frozen=True, slots=True)
class PairPlan:
    """One pair's plan, as the reports show it: every entry of ``plan`` belongs to ``pair``
    (its ``target``, ``account`` and ``region`` stamp each entry of the plan JSON)."""

    pair: Pair
    plan: Plan


@dataclass(frozen=True, slots=True)
class PairError:
    """A pair that was skipped: its role could not be assumed, it answered AccessDenied, it
    throttled past its retries. ``error`` is one line, never a credential; reported as
    ``error: TARGET/REGION: ERROR``."""

    pair: Pair
    error: str

    def line(self) -> str:
        return f"error: {self.pair.key}: {self.error}"


# -- Organizations discovery --------------------------------------------------------------


class OrgAccount(NamedTuple):
    """An account as Organizations ListAccounts lists it."""

    id: str
    name: str
    status: str


class OrgTarget(NamedTuple):
    """A discovered target: its name (the account id) and its account id."""

    name: str
    account: str


def org_targets(
    accounts: Iterable[OrgAccount],
    include: Iterable[str] | None,
    exclude: Iterable[str] | None,
    covered: Iterable[str] = (),
) -> list[OrgTarget]:
    """The ``ACTIVE`` accounts whose id or name matches an ``include`` glob and neither an
    ``exclude`` glob, in the order listed, each once. A discovered target is named by its
    12-digit account id: stable (an account's name may change; leases, state and metrics
    name the target) and never the name of a listed target (the config refuses 12-digit
    names beside ``organization:``). An account in ``covered`` (the accounts of the
    config's role targets) is left out: the listed target covers it. No ``include`` (None
    or empty) includes every account, as ``["*"]`` does."""
    include = list(include or ("*",))
    exclude = list(exclude or ())
    used = set(covered)
    out: list[OrgTarget] = []
    for acct in accounts:
        if acct.status != "ACTIVE" or acct.id in used:
            continue
        keys = (acct.id, acct.name)
        if not any(matches(k, include) for k in keys):
            continue
        if exclude and any(matches(k, exclude) for k in keys):
            continue
        used.add(acct.id)
        out.append(OrgTarget(acct.id, acct.id))
    return out


def org_pairs(
    targets: Iterable[OrgTarget],
    regions: Sequence[str],
    role_name: str,
    external_id: str | None = None,
    partition_of: Callable[[str], str] = lambda region: "aws",
) -> list[Pair]:
    """One pair per discovered target and region, in that order, each reached by assuming
    ``arn:<partition>:iam::<account>:role/<role_name>`` (the partition of the region)."""
    return [
        Pair(
            target=t.name,
            region=region,
            account=t.account,
            role_arn=f"arn:{partition_of(region)}:iam::{t.account}:role/{role_name}",
            external_id=external_id,
        )
        for t in targets
        for region in regions
    ]
