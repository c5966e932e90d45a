"""`credentials` (temporary database credentials for a cluster) and `iam-policy` (the
least-privilege IAM policy this config needs)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from snapworker.entrypoints.app import (
    ConfigOpt,
    PolicyOpt,
    TargetOpt,
    app,
    aws_guard,
    fail,
    load,
    runtime,
)

if TYPE_CHECKING:
    pass


@app.command()
def credentials(
    cluster: Annotated[
        str,
        typer.Option("--cluster", metavar="CLUSTER", help="ClusterIdentifier to connect to."),
    ],
    config: ConfigOpt = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            "-p",
            metavar="NAME",
            help="Whose verify.connect to use (if several have one).",
        ),
    ] = None,
    show_password: Annotated[
        bool,
        typer.Option("--show-password", help="Include the password (only to a terminal)."),
    ] = False,
    target: TargetOpt = None,
) -> None:
    """Print a ready libpq connection string for an operator, from GetClusterCredentials.

    Uses the policy's verify.connect (db_user, db_name, db_groups, duration_seconds,
    auto_create, host/port override, sslmode), the same code path as the restore drills.
    The temporary password is printed only with --show-password, and only when stdout is a
    terminal (never into a pipe or a file); it is never logged. In a fleet, name the
    cluster's (target, region) pair with --target.
    """
    cfg = load(config)
    with_verify = [p for p in cfg.policies if p.verify is not None]
    if policy is not None:
        try:
            chosen = cfg.policy(policy)
        except KeyError as e:
            fail(str(e.args[0]))
        if chosen.verify is None:
            fail(f"policy {chosen.name!r} has no verify block (verify.connect says how to connect)")
    elif len(with_verify) == 1:
        chosen = with_verify[0]
    elif not with_verify:
        fail("no policy has a verify block (verify.connect says how to connect)")
    else:
        names = ", ".join(p.name for p in with_verify)
        fail(f"several policies have a verify block ({names}): choose one with --policy")
    if show_password and not sys.stdout.isatty():
        fail("--show-password prints the password to a terminal only; stdout is not one")
    assert chosen.verify is not None
    rt = runtime(cfg, target=target)
    from snapworker.service.database import connect_params, conninfo

    try:
        info = rt.gateway.describe_cluster(cluster)
    except Exception as e:
        aws_guard(e)
    if info is None:  # a mistyped --cluster is a usage error (exit 2), not a failure
        fail(f"--cluster: no cluster {cluster!r} in this account and region")
    try:
        params = connect_params(rt.gateway, cluster, chosen.verify.connect, info)
    except Exception as e:
        aws_guard(e)
    typer.echo(conninfo(params, with_password=show_password))
    if not show_password:
        typer.echo(
            "# password not shown: add --show-password (on a terminal); valid "
            f"{chosen.verify.connect.duration_seconds} s",
            err=True,
        )


@app.command("iam-policy")
def iam_policy(
    config: ConfigOpt = None,
    policy: PolicyOpt = None,
    account: Annotated[
        str,
        typer.Option(
            metavar="ACCOUNT",
            help="AWS account id the policy is for (12 digits), or '*'. With targets or "
            "organization: the worker's own account (its Redshift permissions, and the "
            "trusted principal's default).",
        ),
    ] = "*",
    region: Annotated[
        str | None,
        typer.Option(
            metavar="REGION",
            help="AWS region, or '*'. Default: aws.region of the config, else '*'. The ARNs "
            "take the region's partition (arn:aws-cn: in cn-north-1, arn:aws-us-gov: in "
            "us-gov-west-1); with '*', any region of the standard partition (arn:aws:). Not "
            "with targets or organization (they list their regions).",
        ),
    ] = None,
    worker_principal: Annotated[
        str | None,
        typer.Option(
            "--worker-principal",
            metavar="ARN",
            help="With targets or organization: the IAM role (or user, or account root) ARN "
            "the worker runs as, trusted by each target's role. Default: the root of "
            "--account; without it, a placeholder to replace.",
        ),
    ] = None,
) -> None:
    """Print the least-privilege IAM policy (JSON) this config needs.

    Only the actions the config's features use (no share accounts: no
    AuthorizeSnapshotAccess; nothing that can expire: no DeleteClusterSnapshot; and so on),
    scoped to the snapshots the worker makes (sw-<policy>-*) where Redshift allows it.
    With targets or organization: one JSON object, the worker's own policy ("worker":
    sts:AssumeRole on the roles, organizations:ListAccounts, and the Redshift permissions of
    the targets on its own credentials) and per role its permission and trust policies
    ("targets", "organization").
    """
    import re

    from snapworker.service.tick import select_policies

    cfg = load(config)
    if account != "*" and re.fullmatch(r"[0-9]{12}", account) is None:
        fail(f"--account: must be a 12-digit AWS account id or '*' (got {account!r})")
    region_re = r"[a-z]{2}(-[a-z]+)+-[0-9]+"
    if region is not None and region != "*" and not re.fullmatch(region_re, region):
        fail(f"--region: must be an AWS region name like 'us-east-1' or '*' (got {region!r})")
    chosen = select_policies(cfg, policy)
    if not cfg.is_fleet:
        if worker_principal is not None:
            fail(
                "--worker-principal: the config has no targets nor organization, so no role "
                "to trust it"
            )
        from snapworker.service.permissions import iam_policy as build
        from snapworker.service.permissions import render

        typer.echo(render(build(cfg, account=account, region=region, policies=chosen)))
        return
    from snapworker.service.fleet_permissions import PLACEHOLDER, PRINCIPAL_ARN, fleet_iam
    from snapworker.service.permissions import render

    if region is not None:
        fail("--region: the config's targets and organization list their regions")
    if worker_principal is not None and PRINCIPAL_ARN.fullmatch(worker_principal) is None:
        hint = (
            " (an assumed-role session: name its role, arn:aws:iam::ACCOUNT:role/NAME)"
            if worker_principal.startswith("arn:") and ":sts::" in worker_principal
            else ""
        )
        fail(
            "--worker-principal: must be an IAM role, user or account root ARN like "
            f"'arn:aws:iam::123456789012:role/snapworker' (got {worker_principal!r}){hint}"
        )
    doc = fleet_iam(cfg, account=account, principal=worker_principal, policies=chosen)
    text = render(doc)
    typer.echo(text)
    if PLACEHOLDER in text:
        typer.echo(
            f"note: the trust policies name {PLACEHOLDER}: replace it with the ARN of the "
            "worker's role (or give --worker-principal ARN, or --account ID for its root)",
            err=True,
        )
    for t in cfg.targets or ():
        if t.role_arn is not None and t.name not in doc["targets"]:
            typer.echo(
                f"note: target {t.name!r}: no policy applies to it; no role policy printed",
                err=True,
            )
    if cfg.organization is not None and "organization" not in doc:
        typer.echo(
            "note: no policy may apply to a discovered account (named by its 12-digit id); "
            "no organization role policy printed",
            err=True,
        )
