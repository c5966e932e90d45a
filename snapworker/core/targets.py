"""The fleet: which (target, region) pairs the worker covers, and which policies apply to each.

A *target* is an AWS account reached with one set of credentials (the worker's own, or a role
it assumes); a *pair* is one target in one region. Everything the worker does happens within
one pair: its listing, its plan, its state rows (keyed by account and region), its lease.
Pure: names and globs in, pairs out.
"""

from __future__ import annotations

import re
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
    "slug",
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
    """A discovered target: its name (from the account's name) and its account id."""

    name: str
    account: str


_NOT_SLUG = re.compile(r"[^A-Za-z0-9]+")


def slug(text: str) -> str:
    """``text`` as a target name: runs of anything but letters and digits become one hyphen,
    none at either end (``"Prod EU (Data)"`` -> ``"Prod-EU-Data"``); may be empty."""
    return _NOT_SLUG.sub("-", text).strip("-")


def org_targets(
    accounts: Iterable[OrgAccount],
    include: Iterable[str] | None,
    exclude: Iterable[str] | None,
    taken: Iterable[str] = (),
) -> list[OrgTarget]:
    """The ``ACTIVE`` accounts whose id or name matches an ``include`` glob and neither an
    ``exclude`` glob, in the order listed, each named by its name slugged (:func:`slug`).
    A name already used (by an earlier account, or in ``taken``: the config's own targets)
    becomes ``<slug>-<id>``; an empty slug becomes the id. No ``include`` (None or empty)
    includes every account, as ``["*"]`` does."""
    include = list(include or ("*",))
    exclude = list(exclude or ())
    used = set(taken)
    out: list[OrgTarget] = []
    for acct in accounts:
        if acct.status != "ACTIVE":
            continue
        keys = (acct.id, acct.name)
        if not any(matches(k, include) for k in keys):
            continue
        if exclude and any(matches(k, exclude) for k in keys):
            continue
        base = slug(acct.name)
        name = base or acct.id
        if name in used:
            name = f"{base}-{acct.id}" if base else acct.id
        if name in used:  # the same account listed twice, or a config target named so
            continue
        used.add(name)
        out.append(OrgTarget(name, acct.id))
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
