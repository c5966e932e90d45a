"""`run` (one tick, for cron) and `plan` (the dry run, or one snapshot's whole decision)."""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from snapworker.entrypoints.app import (
    PLAN_FORMAT_HELP,
    AtOpt,
    ConfigOpt,
    PlanFormat,
    PolicyOpt,
    app,
    aws_guard,
    config_risks,
    dry_run,
    fail,
    html_page,
    load,
    parse_at,
    runtime,
)
from snapworker.entrypoints.progress import ListingBar

if TYPE_CHECKING:
    from snapworker.adapters.store.repository import Gone
    from snapworker.config import Config
    from snapworker.core.model import Plan
    from snapworker.entrypoints.stopping import GracefulStop
    from snapworker.service.tick import Runtime


@app.command()
def run(config: ConfigOpt = None, policy: PolicyOpt = None) -> None:
    """One tick over every policy (or --policy NAME), then exit. For cron.

    Copies new automated snapshots, takes the manual snapshots that are due, shares them,
    and revokes then deletes what fell out of retention (at most max_deletes_per_run per
    policy). Prints what it did; exits 1 if any action failed.

    SIGINT (Ctrl-C) or SIGTERM: no new action starts, the actions in flight finish and are
    journalled, the outcomes are printed, and it exits 130 (SIGINT) or 143 (SIGTERM); the
    next run completes the rest. A second signal exits at once.
    """
    from snapworker.entrypoints.stopping import STOPPING, GracefulStop

    stop = GracefulStop(second_exits=True).install()
    cfg = load(config)
    rt = runtime(cfg, sleep=stop.pace)
    rt.gateway.sleep = stop.backoff
    from snapworker.service.tick import tick
    from snapworker.views.plan_report import render_outcomes, summary

    progress = _Progress()
    listing = ListingBar()

    def on_plan(p: Plan) -> None:
        listing.stop()
        typer.echo(f"plan: {summary(p)}")
        progress.start(len(p.actions))

    try:
        result = tick(
            rt,
            policy,
            progress=progress.update,
            on_plan=on_plan,
            should_stop=stop.is_set,
            listing=listing,
        )
    except Exception as e:
        progress.stop()
        if stop.exit_code is not None and getattr(e, "code", None) == STOPPING:
            # A retry cut short while reading the inventory: nothing was done.
            typer.echo(f"interrupted by {_signal_name(stop)} before any action: {e}", err=True)
            raise typer.Exit(stop.exit_code) from None
        aws_guard(e)
    finally:
        listing.stop()
        progress.stop()
    if result.reconciled:
        typer.echo(f"completed {result.reconciled} action(s) interrupted by an earlier run")
    if result.adopted:
        typer.echo(f"adopted {result.adopted} owned snapshot(s) from their tags")
    _warn_gone(result.gone)
    for n in result.plan.notes:
        if n.level == "warning":
            typer.echo(f"warning: {n.policy}: {n.message}", err=True)
    for name in result.skipped:
        typer.echo(
            f"warning: {name}: skipped, another snapworker (daemon or run) holds its lease; "
            "nothing was done for it (exit 1)",
            err=True,
        )
    typer.echo(render_outcomes(result.outcomes))
    if result.interrupted:
        left = len(result.plan.actions) - len(result.outcomes)
        why = _signal_name(stop) if stop.exit_code is not None else "a lost lease"
        typer.echo(
            f"interrupted by {why}: {left} planned action(s) not started; "
            "the next run completes the rest"
        )
    raise typer.Exit(stop.exit_code if stop.exit_code is not None else result.exit_code)


def _signal_name(stop: GracefulStop) -> str:
    return signal.Signals(stop.signum).name if stop.signum is not None else "a stop"


def _warn_gone(gone: Gone | None) -> None:
    """One line per change outside snapworker that this run first recorded (never again)."""
    if gone is None:
        return
    for r in gone.snapshots:
        at = f"{r.deleted_at:%Y-%m-%d %H:%M}Z" if r.deleted_at is not None else "now"
        typer.echo(
            f"warning: {r.policy}: snapshot {r.snapshot_id} ({r.cluster}) was deleted outside "
            f"snapworker (first missed {at}): recorded as gone, its open grants closed",
            err=True,
        )
    for sid, account in gone.grants:
        typer.echo(
            f"warning: the grant of snapshot {sid} to {account} was revoked outside "
            "snapworker: recorded as closed",
            err=True,
        )


class _Progress:
    """A progress bar on a terminal when a run has many actions; silent otherwise."""

    THRESHOLD = 10

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int) -> None:
        if total < self.THRESHOLD or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task("applying", total=total)

    def update(self, _: Any) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@app.command()
def plan(
    config: ConfigOpt = None,
    policy: PolicyOpt = None,
    format: Annotated[
        PlanFormat, typer.Option("--format", "-f", help=PLAN_FORMAT_HELP)
    ] = PlanFormat.table,
    explain: Annotated[
        str | None,
        typer.Option(
            "--explain",
            metavar="SNAPSHOT",
            help="Only this snapshot's whole decision: owner, age, each rule, hold, grants, "
            "drift, actions (an unknown snapshot: exit 2).",
        ),
    ] = None,
    at: AtOpt = None,
) -> None:
    """The dry-run report: what `run` would do now (or --at a given instant), and why.

    Lists every owned snapshot as kept (with each rule that keeps it) or acted on (with the
    reason). Changes nothing in AWS and records nothing in the state DB; creates the state DB
    (not its folder) if there is none yet, except with --explain, which reads an existing one
    only.
    """
    when = parse_at(at)
    cfg = load(config)
    rt = runtime(cfg, when, create=explain is None)
    result = dry_run(rt, policy)
    clusters = result.inventory.clusters.values() if result.inventory is not None else ()
    config_risks(cfg, config, rt.gateway.account_id(), clusters)
    if explain is not None:
        _explain(rt, cfg, policy, result, explain, format.value)
        return
    for n in result.plan.notes:
        if n.level == "warning":
            typer.echo(f"warning: {n.policy}: {n.message}", err=True)
    if format == PlanFormat.html:
        typer.echo(html_page(rt, cfg, policy, result, what_if=when is not None), nl=False)
        return
    from snapworker.views.plan_report import render, single

    # One pair until the fleet is wired (the lead's): the default target in aws.region.
    plans = single(result.plan, cfg.aws.region or "")
    typer.echo(render(plans, format.value, cfg.report.price_per_gb_month))


def _explain(
    rt: Runtime, cfg: Config, policy: list[str] | None, result: Any, sid: str, fmt: str
) -> None:
    from snapworker.core.explain import UnknownSnapshot, explain
    from snapworker.service.tick import renames, select_policies
    from snapworker.views.explanation import render_explanation
    from snapworker.views.html_report import explanation_page

    try:
        e = explain(
            sid,
            [p.core for p in select_policies(cfg, policy)],
            result.inventory,
            rt.store.load_state(),
            result.plan.generated_at,
            rt.gateway.account_id(),
            [p.name for p in cfg.policies],
            renames(cfg),
        )
    except UnknownSnapshot as exc:
        fail(str(exc))
    typer.echo(
        explanation_page(e) if fmt == "html" else render_explanation(e, fmt), nl=fmt != "html"
    )
