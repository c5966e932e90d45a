"""The IAM documents a fleet needs (``snapworker iam-policy`` on a config with ``targets:`` or
``organization:``).

One JSON object::

    {"worker": POLICY,
     "targets": {"NAME": {"role": ARN, "permissions": POLICY, "trust": TRUST}, ...},
     "organization": {"role": ARN-PATTERN, "permissions": POLICY, "trust": TRUST}}

- ``worker``: the policy of the worker's own principal: ``sts:AssumeRole`` on every listed
  ``role_arn`` (and on ``arn:<partition>:iam::*:role/<role_name>`` with ``organization:``),
  ``organizations:ListAccounts`` with ``organization:`` (it takes no resource: ``*``), and
  the Redshift permissions of the targets without ``role_arn`` (the worker's own
  credentials), scoped to ``--account`` and to those targets' regions.
- ``targets``: per target with a ``role_arn``, the permission policy of that role (the
  Redshift permissions of the policies whose ``targets`` globs take it, scoped to the role's
  account and the target's regions) and its trust policy: the worker's principal may call
  ``sts:AssumeRole``, with ``StringEquals sts:ExternalId`` when ``external_id`` is set. A
  target no policy applies to is left out (``validate`` warns about it).
- ``organization``: the same for the role every discovered account must hold; the account
  in its ARNs is ``*`` (the one role document is deployed in every account, and a role acts
  in its own account only), and the policies are those whose ``targets`` may name a
  discovered account (its name is its 12-digit id); none: left out.

The trusted principal is ``--worker-principal`` (an IAM role, user or account root ARN);
else the root of ``--account`` (any principal of the worker's account its own IAM policy
allows); else :data:`PLACEHOLDER`, which the operator must replace (the command says so
on stderr; the document is not valid IAM until then).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from snapworker.adapters.aws.clusters import partition_of
from snapworker.config.risks import may_match_account_id
from snapworker.core.targets import matches
from snapworker.service.permissions import Scope, document

if TYPE_CHECKING:
    from snapworker.config import Config, Organization, Policy, Target

__all__ = [
    "ASSUME_ROLE",
    "LIST_ACCOUNTS",
    "PLACEHOLDER",
    "PRINCIPAL_ARN",
    "fleet_iam",
    "organization_role",
    "trust_policy",
]

ASSUME_ROLE = "sts:AssumeRole"
"""How the worker reaches a target with a ``role_arn`` (botocore's AssumeRole fetcher)."""
LIST_ACCOUNTS = "organizations:ListAccounts"
"""How the worker discovers the accounts of ``organization:`` (paged)."""
FLEET_ACTIONS = (ASSUME_ROLE, LIST_ACCOUNTS)
PLACEHOLDER = "<WORKER-PRINCIPAL-ARN>"
"""The trusted principal when neither ``--worker-principal`` nor ``--account`` names it."""
PRINCIPAL_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:(?:root|role/[\w+=,.@/-]{1,512}|user/[\w+=,.@/-]{1,512})"
)
"""A principal a trust policy can name: an account root, an IAM role or an IAM user."""
_ARN_PARTITION = re.compile(r"arn:([a-z-]+):")


def organization_role(org: Organization, partition: str) -> str:
    """The ARN pattern of the role assumed in every discovered account."""
    return f"arn:{partition}:iam::*:role/{org.role_name}"


def trust_policy(principal: str, external_id: str | None) -> dict[str, Any]:
    """The trust policy of a target's role: ``principal`` may assume it (with the external
    id, when one is set)."""
    stmt: dict[str, Any] = {
        "Sid": "SnapworkerAssumeRole",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": ASSUME_ROLE,
    }
    if external_id is not None:
        stmt["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [stmt]}


def _partition(arn: str) -> str:
    m = _ARN_PARTITION.match(arn)
    return m.group(1) if m else "aws"


def may_name_discovered(policy: Policy) -> bool:
    """Whether ``policy``'s ``targets`` may take a discovered account (named by its 12-digit
    id). Errs towards True."""
    return policy.targets is None or any(may_match_account_id(g) for g in policy.targets)


def fleet_iam(
    config: Config,
    *,
    account: str = "*",
    principal: str | None = None,
    policies: Sequence[Policy] | None = None,
) -> dict[str, Any]:
    """The worker's policy and, per role, its permission and trust policies (module doc).
    ``account``: the worker's account (``*``: any); ``principal``: the worker's principal
    ARN; ``policies``: the policies to cover (default: every one)."""
    chosen = list(policies if policies is not None else config.policies)
    targets: list[Target] = list(config.targets or ())
    org = config.organization

    def applying(name: str) -> list[Policy]:
        return [p for p in chosen if matches(name, p.targets)]

    def trusted(partition: str) -> str:
        if principal is not None:
            return principal
        if account != "*":
            return f"arn:{partition}:iam::{account}:root"
        return PLACEHOLDER

    own = [
        (Scope(r, account), applying(t.name))
        for t in targets
        if t.role_arn is None
        for r in t.regions
    ]
    statements: list[dict[str, Any]] = document(own)["Statement"] if own else []
    roles = sorted({t.role_arn for t in targets if t.role_arn is not None})
    org_partition = partition_of(org.regions[0]) if org is not None else "aws"
    if org is not None:
        roles.append(organization_role(org, org_partition))
    if roles:
        statements.append(
            {
                "Sid": "SnapworkerAssumeRole",
                "Effect": "Allow",
                "Action": ASSUME_ROLE,
                "Resource": roles[0] if len(roles) == 1 else roles,
            }
        )
    if org is not None:
        statements.append(
            {
                "Sid": "SnapworkerListAccounts",
                "Effect": "Allow",
                "Action": LIST_ACCOUNTS,
                "Resource": "*",
            }
        )
    out: dict[str, Any] = {"worker": {"Version": "2012-10-17", "Statement": statements}}
    roles_out: dict[str, Any] = {}
    for t in targets:
        pols = applying(t.name)
        if t.role_arn is None or not pols:
            continue
        roles_out[t.name] = {
            "role": t.role_arn,
            "permissions": document([(Scope(r, t.account or "*"), pols) for r in t.regions]),
            "trust": trust_policy(trusted(_partition(t.role_arn)), t.external_id),
        }
    out["targets"] = roles_out
    pols = [p for p in chosen if may_name_discovered(p)]
    if org is not None and pols:
        out["organization"] = {
            "role": organization_role(org, org_partition),
            "permissions": document([(Scope(r, "*"), pols) for r in org.regions]),
            "trust": trust_policy(trusted(org_partition), org.external_id),
        }
    return out
