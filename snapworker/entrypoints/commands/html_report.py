"""`report --html`: the self-contained HTML report of a dry run (also `plan --format html`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from snapworker.entrypoints.app import (
    AtOpt,
    ConfigOpt,
    PolicyOpt,
    TargetOpt,
    app,
    fail,
    fleet,
    fleet_dry_run,
    html_page,
    load,
    parse_at,
    print_pair_errors,
)

if TYPE_CHECKING:
    pass


@app.command()
def report(
    html: Annotated[
        str,
        typer.Option(
            "--html", metavar="FILE", help="Write the self-contained HTML report to FILE."
        ),
    ],
    config: ConfigOpt = None,
    policy: PolicyOpt = None,
    target: TargetOpt = None,
    at: AtOpt = None,
) -> None:
    """Write the HTML report: a retention timeline per policy and cluster, then drift,
    recent failures and the last restore drills.

    One self-contained file (no network request: inline CSS and SVG, no script). Each
    snapshot is drawn at its data time with its fate in words (kept and by which rule,
    expires on a date, held, shared, revoke and delete planned, copy or create planned);
    hovering it shows its whole `plan --explain` text. Changes nothing in AWS and records
    nothing in the state DB.
    """
    when = parse_at(at)
    cfg = load(config)
    targets = fleet(cfg, when)
    result = fleet_dry_run(targets, policy, target)
    print_pair_errors(result)
    page = html_page(targets, cfg, policy, result, what_if=when is not None)
    try:
        with open(html, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as e:
        fail(f"--html: cannot write {html}: {e.strerror or e}")
    typer.echo(f"wrote {html}")
