"""`run` (one tick, for cron) and `plan` (the dry run, or one snapshot's whole decision)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from snapworker.entrypoints.app import (
    PLAN_FORMAT_HELP,
    AtOpt,
    ConfigOpt,
    PlanFormat,
    PolicyOpt,
    TargetOpt,
    app,
    aws_guard,
    config_risks,
    fail,
    fleet,
    fleet_dry_run,
    html_page,
    load,
    parse_at,
    print_pair_errors,
)
from snapworker.entrypoints.progress import ListingBar

if TYPE_CHECKING:
    from snapworker.adapters.store.repository import Gone
    from snapworker.config import Config
    from snapworker.core.model import Plan
    from snapworker.core.targets import Pair
    from snapworker.entrypoints.stopping import GracefulStop
    from snapworker.service.bootstrap import FleetTargets
    from snapworker.service.fleet import FleetResult


@app.command()
def run(config: ConfigOpt = None, policy: PolicyOpt = None, target: TargetOpt = None) -> None:
    """One tick over every policy (or --policy NAME) in every target (or --target GLOB),
    then exit. For cron.

    Copies new automated snapshots, takes the manual snapshots that are due, shares them,
    and revokes then deletes what fell out of retention (at most max_deletes_per_run per
    policy). Prints what it did; exits 1 if any action failed.

    Each (target, region) pair is worked on its own: one whose role cannot be assumed, or
    that answers AccessDenied, is reported as `error: TARGET/REGION: ...` and skipped; the
    others are done, and the exit code is 1.

    SIGINT (Ctrl-C) or SIGTERM: no new action starts, the actions in flight finish and are
    journalled, the outcomes are printed, and it exits 130 (SIGINT) or 143 (SIGTERM); the
    next run completes the rest. A second signal exits at once.
    """
    from snapworker.entrypoints.stopping import STOPPING, GracefulStop

    stop = GracefulStop(second_exits=True).install()
    cfg = load(config)
    targets = fleet(cfg, pace=stop.pace, backoff=stop.backoff)
    from snapworker.service.fleet import fleet_tick
    from snapworker.views.plan_report import render_outcomes, render_run, summary

    progress = _Progress()
    listing = ListingBar()
    say = threading.Lock()
    named = cfg.is_fleet

    def on_plan(pair: Pair, p: Plan) -> None:
        with say:
            listing.stop()
            typer.echo(f"plan: {pair.key}: {summary(p)}" if named else f"plan: {summary(p)}")
            progress.add(len(p.actions))

    def on_outcome(_pair: Pair, o: Any) -> None:
        with say:
            progress.update(o)

    try:
        result = fleet_tick(
            cfg,
            targets,
            policy_names=policy,
            target_globs=target,
            progress=on_outcome,
            on_plan=on_plan,
            should_stop=stop.is_set,
            listing=listing if len(targets.pairs()) == 1 else None,
            log=targets.log,
            clock=targets.clock,
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
    for pr in result.pairs:
        r = pr.result
        if r is None:
            continue
        where = f"{pr.pair.key}: " if named else ""
        if r.reconciled:
            typer.echo(f"{where}completed {r.reconciled} action(s) interrupted by an earlier run")
        if r.adopted:
            typer.echo(f"{where}adopted {r.adopted} owned snapshot(s) from their tags")
        _warn_gone(r.gone, where)
        for n in r.plan.notes:
            if n.level == "warning":
                typer.echo(f"warning: {where}{n.policy}: {n.message}", err=True)
        for name in r.skipped:
            typer.echo(
                f"warning: {where}{name}: skipped, another snapworker (daemon or run) holds "
                "its lease; nothing was done for it (exit 1)",
                err=True,
            )
    print_pair_errors(result)
    if named:
        typer.echo(render_run([(r.pair, r.result.outcomes) for r in result.pairs if r.result]))
    else:
        typer.echo(render_outcomes(result.outcomes))
    if result.interrupted:
        left = sum(
            len(r.result.plan.actions) - len(r.result.outcomes)
            for r in result.pairs
            if r.result is not None
        )
        why = _signal_name(stop) if stop.exit_code is not None else "a lost lease"
        typer.echo(
            f"interrupted by {why}: {left} planned action(s) not started; "
            "the next run completes the rest"
        )
    raise typer.Exit(stop.exit_code if stop.exit_code is not None else result.exit_code)


def _signal_name(stop: GracefulStop) -> str:
    return signal.Signals(stop.signum).name if stop.signum is not None else "a stop"


def _warn_gone(gone: Gone | None, where: str = "") -> None:
    """One line per change outside snapworker that this run first recorded (never again);
    ``where``: ``TARGET/REGION: `` in a fleet."""
    if gone is None:
        return
    for r in gone.snapshots:
        at = f"{r.deleted_at:%Y-%m-%d %H:%M}Z" if r.deleted_at is not None else "now"
        typer.echo(
            f"warning: {where}{r.policy}: snapshot {r.snapshot_id} ({r.cluster}) was deleted "
            f"outside snapworker (first missed {at}): recorded as gone, its open grants closed",
            err=True,
        )
    for sid, account in gone.grants:
        typer.echo(
            f"warning: {where}the grant of snapshot {sid} to {account} was revoked outside "
            "snapworker: recorded as closed",
            err=True,
        )


class _Progress:
    """A progress bar on a terminal when a run has many actions; silent otherwise."""

    THRESHOLD = 10

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None

        self._total = 0

    def add(self, actions: int) -> None:
        """A pair's plan came: its actions join the total (the bar shows once there are
        enough to be worth one)."""
        self._total += actions
        if self._bar is not None:
            self._bar.update(self._task, total=self._total)
            return
        if self._total < self.THRESHOLD or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.start()
        self._task = self._bar.add_task("applying", total=self._total)

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
    target: TargetOpt = None,
    format: Annotated[
        PlanFormat, typer.Option("--format", "-f", help=PLAN_FORMAT_HELP)
    ] = PlanFormat.table,
    explain: Annotated[
        str | None,
        typer.Option(
            "--explain",
            metavar="SNAPSHOT",
            help="Only this snapshot's whole decision: owner, age, each rule, hold, grants, "
            "drift, actions (an unknown snapshot: exit 2; one id in several targets: name "
            "one with --target).",
        ),
    ] = None,
    at: AtOpt = None,
) -> None:
    """The dry-run report: what `run` would do now (or --at a given instant), and why.

    Lists every owned snapshot as kept (with each rule that keeps it) or acted on (with the
    reason), by target, policy and cluster. Changes nothing in AWS and records nothing in
    the state DB; creates the state DB (not its folder) if there is none yet, except with
    --explain, which reads an existing one only. A (target, region) pair that cannot be
    read is reported as `error: TARGET/REGION: ...` (exit 1 after the report).
    """
    when = parse_at(at)
    cfg = load(config)
    targets = fleet(cfg, when, create=explain is None)
    result = fleet_dry_run(targets, policy, target)
    warned: set[str] = set()
    for pr in result.pairs:
        r = pr.result
        if r is None or r.inventory is None:
            continue
        account = targets.account_of(pr.pair)
        config_risks(cfg, config, account, r.inventory.clusters.values(), seen=warned)
    if explain is not None:
        _explain(targets, cfg, policy, result, explain, format.value)
        return
    named = cfg.is_fleet
    for pp in result.plans:
        where = f"{pp.pair.key}: " if named else ""
        for n in pp.plan.notes:
            if n.level == "warning":
                typer.echo(f"warning: {where}{n.policy}: {n.message}", err=True)
    print_pair_errors(result)
    if format == PlanFormat.html:
        typer.echo(html_page(targets, cfg, policy, result, what_if=when is not None), nl=False)
    else:
        from snapworker.views.plan_report import render

        typer.echo(render(result.plans, format.value, cfg.report.price_per_gb_month, result.errors))
    if result.errors:
        raise typer.Exit(1)


def _explain(
    targets: FleetTargets,
    cfg: Config,
    policy: list[str] | None,
    result: FleetResult,
    sid: str,
    fmt: str,
) -> None:
    from snapworker.core.explain import UnknownSnapshot, explain
    from snapworker.service.tick import renames, select_policies
    from snapworker.views.explanation import render_explanation
    from snapworker.views.html_report import explanation_page

    found = [
        pr
        for pr in result.pairs
        if pr.result is not None
        and pr.result.inventory is not None
        and sid in pr.result.inventory.snapshots
    ]
    if len(found) > 1:
        fail(
            f"snapshot {sid} is in {len(found)} targets: "
            f"{', '.join(pr.pair.key for pr in found)}; name one with --target"
        )
    print_pair_errors(result)
    # Not listed anywhere: the state DB may still know it (deleted); the one pair, or the
    # first that could be read, answers.
    readable = [pr for pr in result.pairs if pr.result is not None]
    if not found and not readable:
        raise typer.Exit(1)
    pr = found[0] if found else readable[0]
    assert pr.result is not None and pr.result.inventory is not None
    account = targets.account_of(pr.pair)
    rt = targets.runtime_for(pr.pair, account)
    try:
        e = explain(
            sid,
            [p.core for p in select_policies(cfg, policy)],
            pr.result.inventory,
            rt.store.load_state(),
            pr.result.plan.generated_at,
            rt.gateway.account_id() or account,
            [p.name for p in cfg.policies],
            renames(cfg),
        )
    except UnknownSnapshot as exc:
        fail(str(exc))
    typer.echo(
        explanation_page(e)
        if fmt == "html"
        else render_explanation(e, fmt, pr.pair if cfg.is_fleet else None),
        nl=fmt != "html",
    )
