"""The least-privilege IAM policy a configuration needs (``snapworker iam-policy``).

Cloud Custodian style: every kind of work snapworker does (observe, tag, create, copy,
share, revoke, delete, and the hold and verify features) declares, in one place, the
gateway operations it calls, the IAM actions they need, the resources they can be scoped
to, and which config features enable it. The generated policy is the union over the
config's policies of what is enabled, so a config that shares with no account grants no
``AuthorizeSnapshotAccess``, one that never deletes grants no ``DeleteClusterSnapshot``.
A new kind registers itself with :func:`register`; ``tests/test_iam_policy.py`` fails if
a gateway call is not covered by some declared permission.

Scoping (Redshift resource types, Service Authorization Reference):

- snapshot ARNs are ``arn:aws:redshift:REGION:ACCOUNT:snapshot:CLUSTER/SNAPSHOT``; the
  snapshots a policy makes are named ``sw-<policy>-...`` (AWS lowercases snapshot ids, so
  the pattern is lowercased), so every mutation of a snapshot is scoped to
  ``snapshot:*/sw-<policy>-*``: the cluster part stays ``*`` because retention goes on
  after a cluster stops being selected or is deleted;
- the sources of copies are automated snapshots, ``snapshot:<cluster>/rs:*``;
- clusters are ``arn:aws:redshift:REGION:ACCOUNT:cluster:CLUSTER``; the select patterns are
  used when they are plain globs (``*`` and ``?`` mean the same in IAM), else ``*``;
- tagging is limited by ``aws:TagKeys`` to the worker's own keys (``snapworker:*``) and,
  for ``hold``/``release``, to the policies' hold tags;
- listing (DescribeClusters, DescribeClusterSnapshots) is account-wide: ``*``.
- ``sts:GetCallerIdentity`` is listed because the gateway calls it to build an ARN for
  tagging when it does not yet know the account (``RedshiftGateway._sts_account``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snapworker.core.model import TAG_POLICY

if TYPE_CHECKING:
    from snapworker.config import Config, Policy

__all__ = [
    "REGISTRY",
    "Grant",
    "Permission",
    "Scope",
    "declared_iam_actions",
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
        return f"arn:aws:redshift:{self.region}:{self.account}:{kind}:{name}"

    def owned_snapshots(self, policy: Policy) -> str:
        """Every snapshot ``policy`` makes, whatever its cluster."""
        return self.arn("snapshot", f"*/sw-{policy.name.lower()}-*")

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
    condition: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    """(operator, key, values) triples, e.g. ("ForAllValues:StringLike", "aws:TagKeys", ...)."""


@dataclass(frozen=True)
class Permission:
    """What one kind of work needs, and when the config asks for it."""

    kind: str
    operations: tuple[str, ...]
    """The gateway's operations (API names) this kind calls."""
    enabled: Callable[[Policy], bool]
    grants: Callable[[Policy, Scope], list[Grant]]
    why: str
    services: dict[str, str] = field(default_factory=dict)
    """Operations of a service other than Redshift: operation -> IAM prefix (``sts``)."""

    def iam_actions(self) -> list[str]:
        return [f"{self.services.get(op, 'redshift')}:{op}" for op in self.operations]


REGISTRY: dict[str, Permission] = {}


def register(permission: Permission) -> Permission:
    """Declare a kind of work (later features add theirs the same way)."""
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


def _tag_keys(*keys: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    return (("ForAllValues:StringLike", "aws:TagKeys", tuple(sorted(set(keys)))),)


def _verify(policy: Policy) -> bool:
    return policy.verify is not None


register(
    Permission(
        "observe",
        ("DescribeClusters", "DescribeClusterSnapshots"),
        lambda p: True,
        lambda p, s: [Grant(("DescribeClusters", "DescribeClusterSnapshots"), ("*",))],
        "one account-wide listing of clusters and snapshots per run (and the re-read "
        "before a delete)",
    )
)
register(
    Permission(
        "account",
        ("GetCallerIdentity",),
        _makes,
        lambda p, s: [Grant(("sts:GetCallerIdentity",), ("*",))],
        "the account id for a snapshot's ARN when tagging, if no listing revealed it",
        services={"GetCallerIdentity": "sts"},
    )
)
register(
    Permission(
        "tag",
        ("CreateTags",),
        _makes,
        lambda p, s: [
            Grant(("CreateTags",), (s.owned_snapshots(p),), _tag_keys(OWN_TAG_KEYS)),
        ],
        "the ownership tags on what the worker makes (and restoring them after a crash)",
    )
)
register(
    Permission(
        "create",
        ("CreateClusterSnapshot",),
        lambda p: p.create is not None,
        lambda p, s: [
            Grant(
                ("CreateClusterSnapshot",),
                (*s.clusters(p), s.owned_snapshots(p)),
                _tag_keys(OWN_TAG_KEYS),
            )
        ],
        "create.schedule: a manual snapshot of each selected cluster per fire time",
    )
)
register(
    Permission(
        "copy",
        ("CopyClusterSnapshot",),
        lambda p: p.copy_automated,
        lambda p, s: [
            Grant(
                ("CopyClusterSnapshot",),
                (
                    *(s.arn("snapshot", f"{c}/rs:*") for c in cluster_patterns(p)),
                    s.owned_snapshots(p),
                ),
            )
        ],
        "copy_automated: each automated snapshot (rs:*) to a manual one",
    )
)
register(
    Permission(
        "share",
        ("AuthorizeSnapshotAccess",),
        lambda p: bool(p.share.accounts),
        lambda p, s: [Grant(("AuthorizeSnapshotAccess",), (s.owned_snapshots(p),))],
        "share.accounts",
    )
)
register(
    Permission(
        "revoke",
        ("RevokeSnapshotAccess",),
        _revokes,
        lambda p, s: [Grant(("RevokeSnapshotAccess",), (s.owned_snapshots(p),))],
        "before every delete (retention), share.unshare_after, share.revoke_unlisted",
    )
)
register(
    Permission(
        "delete",
        ("DeleteClusterSnapshot",),
        _deletes,
        lambda p, s: [Grant(("DeleteClusterSnapshot",), (s.owned_snapshots(p),))],
        "retention rules with limits.max_deletes_per_run > 0",
    )
)
register(
    Permission(
        "hold",
        ("CreateTags", "DeleteTags", "ModifyClusterSnapshot"),
        lambda p: True,
        lambda p, s: [
            Grant(
                ("CreateTags", "DeleteTags"),
                (s.owned_snapshots(p),),
                _tag_keys(p.hold_tag),
            ),
            Grant(("ModifyClusterSnapshot",), (s.owned_snapshots(p),)),
        ],
        "snapworker hold/release: the hold tag, and the manual retention period set to "
        "indefinite while held",
    )
)


def _verify_grants(p: Policy, s: Scope) -> list[Grant]:
    assert p.verify is not None
    connect = p.verify.connect
    scratch = s.arn("cluster", "swv-*")
    creds = [
        s.arn("dbuser", f"swv-*/{connect.db_user.lower()}"),
        s.arn("dbname", f"swv-*/{connect.db_name}"),
    ]
    creds += [s.arn("dbgroup", f"swv-*/{g}") for g in connect.db_groups]
    actions = ["GetClusterCredentials"]
    if connect.auto_create:
        actions.append("CreateClusterUser")
    if connect.db_groups:
        actions.append("JoinGroup")
    return [
        Grant(("RestoreFromClusterSnapshot",), (s.owned_snapshots(p), scratch)),
        Grant(("CreateTags",), (scratch,), _tag_keys(OWN_TAG_KEYS)),
        Grant(tuple(actions), tuple(creds)),
        Grant(("DeleteCluster",), (scratch,)),
    ]


register(
    Permission(
        "verify",
        (
            "RestoreFromClusterSnapshot",
            "CreateTags",
            "GetClusterCredentials",
            "CreateClusterUser",
            "JoinGroup",
            "DeleteCluster",
        ),
        _verify,
        _verify_grants,
        "verify: restore the newest owned snapshot into a scratch cluster (swv-*), connect "
        "with temporary credentials, delete the scratch cluster",
    )
)


def declared_iam_actions() -> set[str]:
    """Every IAM action some registered kind may ask for."""
    return {a for p in REGISTRY.values() for a in p.iam_actions()}


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
    statements: list[dict[str, Any]] = []
    for kind, perm in REGISTRY.items():
        merged: dict[tuple[Any, ...], set[str]] = {}
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
