"""`validate` (the config, and with --aws the clusters) and `status` (what the state DB holds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from snapworker.entrypoints.app import (
    FORMAT_HELP,
    ConfigOpt,
    Format,
    TargetOpt,
    app,
    aws_guard,
    config_risks,
    load,
)

if TYPE_CHECKING:
    pass


@app.command()
def validate(
    config: ConfigOpt = None,
    aws: Annotated[
        bool,
        typer.Option(
            "--aws",
            help="Also read the cluster and snapshot lists (DescribeClusters, "
            "DescribeClusterSnapshots, read-only): warn about each policy that selects no "
            "cluster, about policies copying the same cluster's automated snapshots, and "
            "about snapshots tagged for a policy the config no longer defines (a rename "
            "without formerly); refuse sharing with the account that owns the snapshots. "
            "Without it, validate makes no AWS call.",
        ),
    ] = False,
) -> None:
    """Check the config file; list every error with file, line, policy and field (exit 2).

    Warns (exit 0) about a policy that makes snapshots with no retention rule, and about
    policies that can copy the same cluster's automated snapshots. A policy that selects no
    cluster is a warning (with --aws), not an error: clusters come and go, and retention
    still applies to what the policy owns.
    """
    cfg = load(config)
    from snapworker.config import resolve_config_path

    n = len(cfg.policies)
    ok = f"{resolve_config_path(config)}: ok ({n} polic{'y' if n == 1 else 'ies'})"
    if not aws:
        typer.echo(ok)
        config_risks(cfg, config)
        return
    from snapworker.adapters.aws.redshift import RedshiftGateway, make_client
    from snapworker.core.planner import selects

    try:
        gateway = RedshiftGateway(make_client(cfg.aws), cfg.retry)
        clusters = gateway.list_clusters()
        snapshots = gateway.list_snapshots()
    except Exception as e:
        aws_guard(e)
    config_risks(cfg, config, gateway.account_id(), clusters.values(), snapshots.values())
    typer.echo(ok)
    for p in cfg.policies:
        chosen = [c for c in clusters.values() if selects(p.core, c)]
        if not chosen:
            typer.echo(f"warning: {p.name}: selects no cluster", err=True)
        else:
            typer.echo(f"{p.name}: selects {', '.join(sorted(c.id for c in chosen))}")


@app.command()
def status(
    config: ConfigOpt = None,
    format: Annotated[Format, typer.Option("--format", "-f", help=FORMAT_HELP)] = Format.table,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all",
            help="List every open grant and restore drill (without it, the first 20 of each "
            "and how many more).",
        ),
    ] = False,
    target: TargetOpt = None,
) -> None:
    """What the state DB holds: owned snapshots, grants, recent runs and failures.

    Reads an existing state DB only (none: exit 2); one in a folder SQLite cannot write
    its -wal/-shm files in is read read-only, with a note.
    """
    cfg = load(config)
    from snapworker.adapters.store.repository import open_store
    from snapworker.views.status import render_status

    store = open_store(cfg.state_url, create=False, read_only_fallback=True)
    if store.read_only:
        typer.echo(
            f"note: state DB {store.url}: its folder is not writable; read read-only",
            err=True,
        )
    price = cfg.report.price_per_gb_month
    typer.echo(render_status(store, format.value, show_all=show_all, price=price, targets=target))
