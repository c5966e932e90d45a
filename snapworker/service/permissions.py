"""The least-privilege IAM policy a configuration needs (``snapworker iam-policy``).

Cloud Custodian style: every kind of work snapworker does (observe, tag, create, copy,
share, revoke, delete, and the hold, verify and figures features) declares the IAM actions
it calls on the code that calls them (the executor's ``@handler``, ``@needs`` elsewhere: see
``snapworker.service.iam``). This module adds, per kind, which config features enable it
and the resources (and conditions) each of its actions can be scoped to. The generated
policy is the union over the config's policies of what is enabled, so a config that shares
with no account grants no ``AuthorizeSnapshotAccess``, one that never deletes grants no
``DeleteClusterSnapshot``. A declared kind or action with no scoping here is an error;
``tests/test_iam_policy.py`` fails if a gateway call is not covered by some declaration, and
if a call the config makes on some path is not allowed by the generated policy.

Scoping (Redshift resource types, Service Authorization Reference):

- snapshot ARNs are ``arn:PARTITION:redshift:REGION:ACCOUNT:snapshot:CLUSTER/SNAPSHOT``; the
  snapshots a policy makes are named ``sw-<policy>-...`` (AWS lowercases snapshot ids, so
  the pattern is lowercased), so every mutation of a snapshot is scoped to
  ``snapshot:*/sw-<policy>-*``: the cluster part stays ``*`` because retention goes on
  after a cluster stops being selected or is deleted;
- the sources of copies are automated snapshots, ``snapshot:<cluster>/rs:*``;
- clusters are ``arn:PARTITION:redshift:REGION:ACCOUNT:cluster:CLUSTER``; the select patterns are
  used when they are plain globs (``*`` and ``?`` mean the same in IAM), else ``*``;
- tagging is limited by ``aws:TagKeys`` to the worker's own keys (``snapworker:*``) and,
  for ``hold``/``release``, to the policies' hold tags;
- listing (DescribeClusters, DescribeClusterSnapshots) is account-wide: ``*``;
- GetClusterCredentials is scoped to ``verify.connect``'s db user, db name and db groups: on
  the scratch clusters (``swv-*``) for the drills, and on the selected clusters for
  ``verify.record_before_snapshot`` (the figures are read on the live cluster).
- PARTITION is the region's, from botocore's endpoint data (``aws-cn`` in ``cn-north-1``,
  ``aws-us-gov`` in ``us-gov-west-1``); with the region ``*``, ``aws``.
- ``sts:GetCallerIdentity`` is listed because the gateway calls it to build an ARN for
  tagging when it does not yet know the account (``RedshiftGateway._sts_account``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# Imported for their declarations (``@handler``, ``@needs``): the IAM actions come from the
# code that calls AWS. None of them imports the state DB's stack.
from snapworker.adapters.aws.clusters import partition_of
from snapworker.core.model import TAG_POLICY
from snapworker.service import database, drills, executor, holds, tick  # noqa: F401
from snapworker.service.iam import DECLARED, Declared

if TYPE_CHECKING:
    from snapworker.config import Config, Policy

__all__ = [
    "REGISTRY",
    "Grant",
    "Permission",
    "Scope",
    "declared_iam_actions",
    "document",
    "iam_policy",
    "register",
    "render",
]

OWN_TAG_KEYS = TAG_POLICY.split(":")[0] + ":*"  # "snapworker:*"
_PLAIN_GLOB = re.compile(r"[A-Za-z0-9*?-]+")


@dataclass(frozen=True)
class Scope:
    """Where the policy applies: one region and one account (``*`` for any)."""

    region: str = "*"
    account: str = "*"

    def arn(self, kind: str, name: str) -> str:
        # The partition of the region (arn:aws-cn: in cn-north-1); for "*", arn:aws:.
        return (
            f"arn:{partition_of(self.region)}:redshift:{self.region}:{self.account}:{kind}:{name}"
        )

    def owned_snapshots(self, policy: Policy) -> tuple[str, ...]:
        """Every snapshot ``policy`` makes, whatever its cluster, and those it owns under its
        former names (``formerly``: their ids were made from those names)."""
        return tuple(
            self.arn("snapshot", f"*/sw-{name.lower()}-*")
            for name in (policy.name, *policy.formerly)
        )

    def clusters(self, policy: Policy) -> list[str]:
        return [self.arn("cluster", p) for p in cluster_patterns(policy)]


def cluster_patterns(policy: Policy) -> list[str]:
    """The select patterns as IAM wildcards; ``*`` if one cannot be written as one."""
    patterns = list(policy.select.clusters)
    if not patterns or not all(_PLAIN_GLOB.fullmatch(p) for p in patterns):
        return ["*"]
    return sorted(set(patterns))


@dataclass(frozen=True)
class Grant:
    """IAM actions on resources, under an optional condition: one statement to be."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Condition = ()
    """(operator, key, values) triples, e.g. ("ForAllValues:StringLike", "aws:TagKeys", ...)."""


Condition = tuple[tuple[str, str, tuple[str, ...]], ...]
Where = tuple[tuple[str, ...], Condition] | None
"""The resources (and condition) one action is granted on for a policy; None: not granted
(the policy does not need it, or another kind grants it more widely)."""
Scoper = Callable[["Policy", Scope], Where]

EVERY = "*"
"""The key of :attr:`Permission.scopes` that scopes every declared action alike."""


@dataclass(frozen=True)
class Permission:
    """When the config asks for one kind of work, and where its IAM actions apply. The
    actions themselves are the kind's declaration (``snapworker.service.iam.DECLARED``)."""

    kind: str
    enabled: Callable[[Policy], bool]
    scopes: Mapping[str, Scoper]
    """IAM action (or :data:`EVERY`) -> its resources and condition for a policy."""

    @property
    def declared(self) -> Declared:
        try:
            return DECLARED[self.kind]
        except KeyError:
            raise LookupError(f"no code declares the IAM actions of {self.kind!r}") from None

    def iam_actions(self) -> list[str]:
        return list(self.declared.actions)

    def grants(self, policy: Policy, scope: Scope) -> list[Grant]:
        """The declared actions this policy needs, grouped by where they apply."""
        groups: dict[tuple[tuple[str, ...], Condition], list[str]] = {}
        for action in self.declared.actions:
            scoper = self.scopes.get(action) or self.scopes.get(EVERY)
            if scoper is None:
                raise LookupError(
                    f"{self.kind}: {action} is declared but not scoped: add it to permissions.py"
                )
            where = scoper(policy, scope)
            if where is not None:
                groups.setdefault(where, []).append(action)
        return [Grant(tuple(acts), res, cond) for (res, cond), acts in groups.items()]


REGISTRY: dict[str, Permission] = {}
"""The scoping of every kind, in the order of the generated statements."""


def register(permission: Permission) -> Permission:
    """Scope a declared kind of work (later features add theirs the same way)."""
    REGISTRY[permission.kind] = permission
    return permission


def _deletes(policy: Policy) -> bool:
    return policy.retention.has_rules and policy.limits.max_deletes_per_run > 0


def _revokes(policy: Policy) -> bool:
    # Before a delete every account in AccountsWithRestoreAccess is revoked, whoever
    # shared the snapshot: so revoking follows deleting, not the share list.
    share = policy.share
    return _deletes(policy) or share.unshare_after is not None or share.revoke_unlisted


def _makes(policy: Policy) -> bool:
    return policy.create is not None or policy.copy_automated


def _tag_keys(*keys: str) -> Condition:
    return (("ForAllValues:StringLike", "aws:TagKeys", tuple(sorted(set(keys)))),)


def _anywhere(p: Policy, s: Scope) -> Where:
    return (("*",), ())


def _owned(p: Policy, s: Scope) -> Where:
    return (s.owned_snapshots(p), ())


def _by_observe(p: Policy, s: Scope) -> Where:
    """Granted account-wide by ``observe`` (every run lists clusters and snapshots)."""
    return None


def _figures(p: Policy) -> bool:
    return p.create is not None and p.verify is not None and bool(p.verify.record_before_snapshot)


def _db_scopers(clusters: Callable[[Policy], list[str]]) -> dict[str, Scoper]:
    """GetClusterCredentials and what it may do on the way (AutoCreate, DbGroups), on the
    db user, db name and db groups of ``verify.connect`` in ``clusters``."""

    def creds(p: Policy, s: Scope) -> Where:
        assert p.verify is not None
        connect = p.verify.connect
        names = clusters(p)
        arns = [s.arn("dbuser", f"{c}/{connect.db_user.lower()}") for c in names]
        arns += [s.arn("dbname", f"{c}/{connect.db_name}") for c in names]
        arns += [s.arn("dbgroup", f"{c}/{g}") for c in names for g in connect.db_groups]
        return (tuple(arns), ())

    def auto_create(p: Policy, s: Scope) -> Where:
        return creds(p, s) if p.verify is not None and p.verify.connect.auto_create else None

    def groups(p: Policy, s: Scope) -> Where:
        return creds(p, s) if p.verify is not None and p.verify.connect.db_groups else None

    return {
        "redshift:GetClusterCredentials": creds,
        "redshift:CreateClusterUser": auto_create,
        "redshift:JoinGroup": groups,
        "redshift:DescribeClusters": _by_observe,
    }


SCRATCH = "swv-*"
"""The scratch clusters of restore drills (``core.verify.scratch_cluster_id``)."""

register(Permission("observe", lambda p: True, {EVERY: _anywhere}))
register(Permission("account", _makes, {EVERY: _anywhere}))
register(
    Permission(
        "tag",
        lambda p: _makes(p) or bool(p.formerly),  # formerly: re-tags the former name's
        {EVERY: lambda p, s: (s.owned_snapshots(p), _tag_keys(OWN_TAG_KEYS))},
    )
)
register(
    Permission(
        "create",
        lambda p: p.create is not None,
        {EVERY: lambda p, s: ((*s.clusters(p), *s.owned_snapshots(p)), _tag_keys(OWN_TAG_KEYS))},
    )
)
register(
    Permission(
        "copy",
        lambda p: p.copy_automated,
        {
            EVERY: lambda p, s: (
                (
                    *(s.arn("snapshot", f"{c}/rs:*") for c in cluster_patterns(p)),
                    *s.owned_snapshots(p),
                ),
                (),
            )
        },
    )
)
register(Permission("share", lambda p: bool(p.share.accounts), {EVERY: _owned}))
register(Permission("revoke", _revokes, {EVERY: _owned}))
register(
    Permission(
        "delete",
        _deletes,
        {
            "redshift:DeleteClusterSnapshot": _owned,
            "redshift:DescribeClusterSnapshots": _by_observe,
        },
    )
)
register(
    Permission(
        "hold",
        lambda p: True,
        {
            "redshift:CreateTags": lambda p, s: (s.owned_snapshots(p), _tag_keys(p.hold_tag)),
            "redshift:DeleteTags": lambda p, s: (s.owned_snapshots(p), _tag_keys(p.hold_tag)),
            "redshift:ModifyClusterSnapshot": _owned,
        },
    )
)
register(
    Permission(
        "verify",
        lambda p: p.verify is not None,
        {
            "redshift:RestoreFromClusterSnapshot": lambda p, s: (
                (*s.owned_snapshots(p), s.arn("cluster", SCRATCH)),
                (),
            ),
            "redshift:CreateTags": lambda p, s: (
                (s.arn("cluster", SCRATCH),),
                _tag_keys(OWN_TAG_KEYS),
            ),
            "redshift:DeleteCluster": lambda p, s: ((s.arn("cluster", SCRATCH),), ()),
            **_db_scopers(lambda p: [SCRATCH]),
        },
    )
)
register(Permission("figures", _figures, _db_scopers(cluster_patterns)))


def declared_iam_actions() -> set[str]:
    """Every IAM action some code declares (``snapworker.service.iam``)."""
    return {a for d in DECLARED.values() for a in d.actions}


def _qualified(action: str) -> str:
    return action if ":" in action else f"redshift:{action}"


def _sid(kind: str, n: int) -> str:
    base = "Snapworker" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", kind))
    return base if n == 0 else f"{base}{n + 1}"


def iam_policy(
    config: Config,
    account: str = "*",
    region: str | None = None,
    policies: Sequence[Policy] | None = None,
) -> dict[str, Any]:
    """The IAM policy document ``config`` needs (for ``policies``, default: all of them)."""
    scope = Scope(region or config.aws.region or "*", account)
    chosen = list(policies if policies is not None else config.policies)
    return document([(scope, chosen)])


def document(scoped: Iterable[tuple[Scope, Sequence[Policy]]]) -> dict[str, Any]:
    """One IAM policy document for the ``policies`` of each scope (an account in a region):
    the statements of a kind that grant the same actions under the same condition are one
    statement, its resources the union over the scopes."""
    unscoped = sorted(set(DECLARED) - set(REGISTRY))
    if unscoped:
        raise LookupError(f"declared kinds with no scoping in permissions.py: {unscoped}")
    scoped = list(scoped)
    statements: list[dict[str, Any]] = []
    for kind, perm in REGISTRY.items():
        merged: dict[tuple[Any, ...], set[str]] = {}
        for scope, chosen in scoped:
            for policy in chosen:
                if not perm.enabled(policy):
                    continue
                for g in perm.grants(policy, scope):
                    key = (tuple(sorted({_qualified(a) for a in g.actions})), g.condition)
                    merged.setdefault(key, set()).update(g.resources)
        for n, ((actions, condition), resources) in enumerate(
            sorted(merged.items(), key=lambda kv: (kv[0][0], repr(kv[0][1])))
        ):
            stmt: dict[str, Any] = {
                "Sid": _sid(kind, n),
                "Effect": "Allow",
                "Action": list(actions) if len(actions) > 1 else actions[0],
                "Resource": _resources(resources),
            }
            if condition:
                cond: dict[str, dict[str, list[str]]] = {}
                for op, key, values in condition:
                    cond.setdefault(op, {})[key] = list(values)
                stmt["Condition"] = cond
            statements.append(stmt)
    return {"Version": "2012-10-17", "Statement": statements}


def _resources(resources: Iterable[str]) -> str | list[str]:
    found = sorted(set(resources))
    if "*" in found:
        return "*"
    return found[0] if len(found) == 1 else found


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2)


def actions_of(document: dict[str, Any]) -> set[str]:
    """Every IAM action a generated document allows (for tests and reports)."""
    out: set[str] = set()
    for stmt in document["Statement"]:
        action = stmt["Action"]
        out.update([action] if isinstance(action, str) else action)
    return out
