"""The command line (Typer). Commands only parse, wire and print; the work is elsewhere.

Imports are made inside each command, so that ``snapworker validate`` does not pay for
boto3 and ``snapworker run`` does not pay for moto (cron starts us often).

Exit codes: 0 success, 1 some action failed (the others still ran), 2 bad usage or config.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from snapworker.config import Config
    from snapworker.core.model import Plan
    from snapworker.engine import Runtime

app = typer.Typer(
    name="snapworker",
    help=(
        "Keeps the manual snapshots of Amazon Redshift clusters on policy: takes them on a "
        "schedule, copies automated snapshots to manual ones, shares them, and revokes "
        "every grant before deleting what fell out of retention.\n\n"
        "Exit codes: 0 success, 1 some action failed (the others still ran), "
        "2 bad usage or config."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file. Default: $SNAPWORKER_CONFIG, else ./snapworker.yaml.",
        show_default=False,
    ),
]
PolicyOpt = Annotated[
    list[str] | None,
    typer.Option("--policy", "-p", help="Only this policy (repeat for several). Default: all."),
]


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"snapworker: {message}", err=True)
    raise typer.Exit(code)


def load(config_path: str | None) -> Config:
    from snapworker.config import ConfigError, load_config, resolve_config_path

    path = resolve_config_path(config_path)
    try:
        return load_config(path)
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


def runtime(config: Config) -> Runtime:
    from snapworker.bootstrap import bootstrap
    from snapworker.logs import configure
    from snapworker.store.repository import StateStoreError

    configure()
    try:
        return bootstrap(config)
    except StateStoreError as e:
        fail(str(e))


def _aws_guard(exc: BaseException) -> NoReturn:
    """Turn a failure to reach AWS into one clear line (no traceback)."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError

    from snapworker.aws.redshift import AwsError

    if isinstance(exc, NoRegionError):
        fail("no AWS region: set aws.region in the config, or AWS_REGION", 2)
    if isinstance(exc, NoCredentialsError):
        fail("no AWS credentials found (standard chain: env, profile, instance role)", 2)
    if isinstance(exc, AwsError):
        fail(f"could not read the inventory: {exc}", 1)
    if isinstance(exc, BotoCoreError):
        fail(f"could not reach AWS: {exc}", 1)
    raise exc


@app.command()
def run(config: ConfigOpt = None, policy: PolicyOpt = None) -> None:
    """One tick over every policy (or --policy NAME), then exit. For cron.

    Copies new automated snapshots, takes the manual snapshots that are due, shares them,
    and revokes then deletes what fell out of retention (at most max_deletes_per_run per
    policy). Prints what it did; exits 1 if any action failed.
    """
    cfg = load(config)
    rt = runtime(cfg)
    from snapworker.engine import UnknownPolicy, tick
    from snapworker.report import render_outcomes, summary

    progress = _Progress()

    def on_plan(p: Plan) -> None:
        typer.echo(f"plan: {summary(p)}")
        progress.start(len(p.actions))

    try:
        result = tick(rt, policy, progress=progress.update, on_plan=on_plan)
    except UnknownPolicy as e:
        fail(str(e))
    except Exception as e:
        _aws_guard(e)
    finally:
        progress.stop()
    if result.reconciled:
        typer.echo(f"completed {result.reconciled} action(s) interrupted by an earlier run")
    if result.adopted:
        typer.echo(f"adopted {result.adopted} owned snapshot(s) from their tags")
    for n in result.plan.notes:
        if n.level == "warning":
            typer.echo(f"warning: {n.policy}: {n.message}", err=True)
    typer.echo(render_outcomes(result.outcomes))
    raise typer.Exit(result.exit_code)


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
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """The dry-run report: what `run` would do now, and why.

    Lists every owned snapshot as kept (with each rule that keeps it) or acted on (with the
    reason). Changes nothing in AWS and records nothing in the state DB.
    """
    cfg = load(config)
    rt = runtime(cfg)
    from snapworker.engine import UnknownPolicy, tick
    from snapworker.report import render

    try:
        result = tick(rt, policy, dry_run=True)
    except UnknownPolicy as e:
        fail(str(e))
    except Exception as e:
        _aws_guard(e)
    for n in result.plan.notes:
        if n.level == "warning":
            typer.echo(f"warning: {n.policy}: {n.message}", err=True)
    typer.echo(render(result.plan, format.value))


@app.command()
def validate(config: ConfigOpt = None) -> None:
    """Check the config file; list every error with file, line, policy and field (exit 2)."""
    cfg = load(config)
    from snapworker.config import resolve_config_path

    n = len(cfg.policies)
    typer.echo(f"{resolve_config_path(config)}: ok ({n} polic{'y' if n == 1 else 'ies'})")


@app.command()
def status(
    config: ConfigOpt = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
) -> None:
    """What the state DB holds: owned snapshots, grants, recent runs and failures."""
    cfg = load(config)
    from snapworker.status import render_status
    from snapworker.store.repository import StateStoreError, open_store

    try:
        store = open_store(cfg.state_url)
    except StateStoreError as e:
        fail(str(e))
    typer.echo(render_status(store, format.value))


@app.command()
def demo(
    state_url: Annotated[
        str | None,
        typer.Option(help="State DB for the demo. Default: a fresh file in a temp directory."),
    ] = None,
) -> None:
    """Run the main job against an embedded sandbox (moto, seeded with demo clusters).

    No AWS account needed: prints the plan, runs it, then runs again to show that a rerun
    changes nothing. Needs the `sandbox` extra (moto).
    """
    from snapworker.demo import run_demo

    raise typer.Exit(run_demo(state_url))


SnapshotArg = Annotated[str, typer.Argument(help="A snapshot id snapworker owns.")]


def _hold_command(snapshot: str, config: str | None, reason: str | None) -> None:
    """hold (reason given) or release (None): refusals exit 2 before any AWS mutation."""
    cfg = load(config)
    rt = runtime(cfg)
    from snapworker.aws.redshift import AwsError
    from snapworker.holds import HoldRefused
    from snapworker.holds import hold as do_hold
    from snapworker.holds import release as do_release

    try:
        text = do_release(rt, snapshot) if reason is None else do_hold(rt, snapshot, reason)
    except HoldRefused as e:
        fail(str(e))
    except AwsError as e:
        fail(f"{'release' if reason is None else 'hold'} {snapshot} failed: {e}", 1)
    except Exception as e:
        _aws_guard(e)
    typer.echo(text)


@app.command()
def hold(
    snapshot: SnapshotArg,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", "-r", help="Why it is held: the hold tag's value (at most 256 characters)."
        ),
    ],
    config: ConfigOpt = None,
) -> None:
    """Hold an owned snapshot: never revoked nor deleted, whatever the rules say.

    Sets the owning policy's hold tag (hold_tag, default snapworker:hold) to the reason. An
    unknown snapshot, or one snapworker does not own, is refused (exit 2), unchanged.
    """
    _hold_command(snapshot, config, reason)


@app.command()
def release(snapshot: SnapshotArg, config: ConfigOpt = None) -> None:
    """Release a held snapshot: clears the hold tag; the policy's rules decide again.

    An unknown snapshot, or one snapworker does not own, is refused (exit 2), unchanged.
    """
    _hold_command(snapshot, config, None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
