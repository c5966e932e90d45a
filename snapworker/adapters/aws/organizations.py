"""Organizations discovery: the accounts ListAccounts lists (every page), and the pairs of
the config's ``organization:`` (which accounts, which role, which regions: the selection is
pure, in :func:`snapworker.core.targets.org_targets`).

ListAccounts is asked with the worker's own credentials (it must run in the management
account, or a delegated administrator), at ``aws.endpoint_url`` when set (moto's server).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from snapworker.adapters.aws.clusters import partition_of
from snapworker.adapters.aws.errors import translate
from snapworker.core.targets import OrgAccount, Pair, org_pairs, org_targets

if TYPE_CHECKING:
    import boto3

    from snapworker.config.models import Organization

__all__ = ["discover_pairs", "list_accounts"]


def list_accounts(
    session: boto3.Session | None = None,
    *,
    client: Any = None,
    endpoint_url: str | None = None,
    page_size: int | None = None,
) -> list[OrgAccount]:
    """Every account of the organization, (id, name, status), in the order listed, through
    botocore's paginator (``NextToken``). ``client``: an Organizations client (e.g.
    ``Sessions.client(pair, "organizations")``), else one from ``session``. ``page_size``:
    ``MaxResults`` (AWS allows 1..20). Errors are :class:`~.errors.AwsError` (e.g.
    ``AWSOrganizationsNotInUseException``, ``AccessDeniedException``)."""
    if client is None:
        assert session is not None, "give a session or a client"
        client = session.client("organizations", endpoint_url=endpoint_url)
    paging = {"PageSize": page_size} if page_size else {}

    def pages() -> list[OrgAccount]:
        out: list[OrgAccount] = []
        for page in client.get_paginator("list_accounts").paginate(PaginationConfig=paging):
            for a in page.get("Accounts", []):
                status = a.get("State") or a.get("Status") or ""
                out.append(OrgAccount(str(a["Id"]), str(a.get("Name", "")), str(status)))
        return out

    return translate("ListAccounts", None, pages)


def discover_pairs(
    accounts: Iterable[OrgAccount], org: Organization, covered: Iterable[str] = ()
) -> list[Pair]:
    """The pairs of ``organization:``: its selected active accounts (each named by its account
    id; ``covered``: the accounts the config's role targets already cover) x its regions,
    each with the role
    ``arn:<partition>:iam::<account>:role/<role_name>`` and the external id."""
    targets = org_targets(accounts, org.accounts.include, org.accounts.exclude, covered)
    return org_pairs(targets, org.regions, org.role_name, org.external_id, partition_of)
