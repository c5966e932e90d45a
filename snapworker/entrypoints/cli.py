"""The command line (Typer). Commands only parse, wire and print; the work is elsewhere.

Imports are made inside each command, so that ``snapworker validate`` does not pay for
boto3 and ``snapworker run`` does not pay for moto (cron starts us often).

Exit codes: 0 success, 1 some action failed (the others still ran), 2 bad usage or config.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

# snapworker uses no pydantic plugin, and looking for them scans every installed package's
# entry points (~13 ms of each start); an operator's own setting still wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer

if TYPE_CHECKING:
    from snapworker.config import Config
    from snapworker.core.model import Plan
    from snapworker.service.tick import Runtime

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
    """Every report renders in each of these (``status``, ``plan``, ``plan --explain``)."""

    table = "table"
    json = "json"
    markdown = "markdown"


FORMAT_HELP = "table (for a person), json (for a script) or markdown (for a ticket or a wiki)."


class PlanFormat(StrEnum):
    """``plan`` renders these: the report formats, and the HTML page (``report --html``)."""

    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


PLAN_FORMAT_HELP = (
    "table (for a person), json (for a script), markdown (for a ticket or a wiki) or html "
    "(the self-contained page of `report --html`, to stdout)."
)

AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="TIME",
        help="Plan as it would be at this instant (ISO 8601 with a timezone, e.g. "
        "2027-01-15T00:00Z): what expires when. Nothing is changed or recorded.",
        show_default=False,
    ),
]


def parse_at(value: str | None) -> datetime | None:
    """``--at``: an ISO 8601 instant with a timezone (exit 2 naming the option otherwise)."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        fail(
            f"--at: not an ISO 8601 time with a timezone: {value!r} "
            "(for example 2027-01-15T00:00Z or 2027-01-15T00:00+01:00)"
        )
    return t.astimezone(UTC)


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


def runtime(config: Config, at: datetime | None = None) -> Runtime:
    """The wired runtime; ``at``: a clock stopped at that instant (``plan --at``)."""
    from snapworker.adapters.store.repository import StateStoreError
    from snapworker.logs import configure
    from snapworker.service.bootstrap import bootstrap

    configure()
    clock: Callable[[], datetime] | None = None if at is None else (lambda: at)
    try:
        return bootstrap(config, clock=clock)
    except StateStoreError as e:
        fail(str(e))


def _aws_guard(exc: BaseException) -> NoReturn:
    """Turn a failure to reach AWS into one clear line (no traceback)."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError

    from snapworker.adapters.aws.redshift import AwsError
    from snapworker.adapters.store.repository import StateStoreError

    if isinstance(exc, StateStoreError):
        # Locked past the busy timeout, read-only, not a database...: the journal cannot be
        # written, so no AWS mutation is attempted (each is journalled first). Exit 2, like
        # a state DB that cannot be opened at all: the setup needs fixing, not the run.
        fail(f"{exc}; stopped before changing anything in AWS that it could not journal", 2)
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
    from snapworker.service.tick import UnknownPolicy, tick
    from snapworker.views.plan_report import render_outcomes, summary

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
    for name in result.skipped:
        typer.echo(
            f"warning: {name}: skipped, another snapworker (daemon or run) holds its lease; "
            "nothing was done for it (exit 1)",
            err=True,
        )
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
    reason). Changes nothing in AWS and records nothing in the state DB.
    """
    when = parse_at(at)
    cfg = load(config)
    rt = runtime(cfg, when)
    result = _dry_run(rt, policy)
    if explain is not None:
        _explain(rt, cfg, policy, result, explain, format.value)
        return
    for n in result.plan.notes:
        if n.level == "warning":
            typer.echo(f"warning: {n.policy}: {n.message}", err=True)
    if format == PlanFormat.html:
        typer.echo(_html_page(rt, cfg, policy, result, what_if=when is not None), nl=False)
        return
    from snapworker.views.plan_report import render

    typer.echo(render(result.plan, format.value))


def _dry_run(rt: Runtime, policy: list[str] | None) -> Any:
    from snapworker.service.tick import UnknownPolicy, tick

    try:
        return tick(rt, policy, dry_run=True)
    except UnknownPolicy as e:
        fail(str(e))
    except Exception as e:
        _aws_guard(e)


def _html_page(
    rt: Runtime, cfg: Config, policy: list[str] | None, result: Any, *, what_if: bool
) -> str:
    """The HTML report of a dry run, with the state DB's failures and drills."""
    from snapworker.service.tick import select_policies
    from snapworker.views.html_report import ReportInput, render_html
    from snapworker.views.status import status_dict

    return render_html(
        ReportInput(
            plan=result.plan,
            inventory=result.inventory,
            state=rt.store.load_state(),
            policies=select_policies(cfg, policy),
            account=rt.gateway.account_id(),
            all_policy_names=[p.name for p in cfg.policies],
            status=status_dict(rt.store),
            what_if=what_if,
        )
    )


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
    rt = runtime(cfg, when)
    result = _dry_run(rt, policy)
    page = _html_page(rt, cfg, policy, result, what_if=when is not None)
    try:
        with open(html, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as e:
        fail(f"--html: cannot write {html}: {e.strerror or e}")
    typer.echo(f"wrote {html}")


def _explain(
    rt: Runtime, cfg: Config, policy: list[str] | None, result: Any, sid: str, fmt: str
) -> None:
    from snapworker.core.explain import UnknownSnapshot, explain
    from snapworker.service.tick import select_policies
    from snapworker.views.explanation import render_explanation
    from snapworker.views.html_report import explanation_page

    try:
        e = explain(
            sid,
            select_policies(cfg, policy),
            result.inventory,
            rt.store.load_state(),
            result.plan.generated_at,
            rt.gateway.account_id(),
            [p.name for p in cfg.policies],
        )
    except UnknownSnapshot as exc:
        fail(str(exc))
    typer.echo(
        explanation_page(e) if fmt == "html" else render_explanation(e, fmt), nl=fmt != "html"
    )


@app.command()
def validate(
    config: ConfigOpt = None,
    aws: Annotated[
        bool,
        typer.Option(
            "--aws",
            help="Also read the cluster list (DescribeClusters, read-only) and warn about each "
            "policy that selects no cluster. Without it, validate makes no AWS call.",
        ),
    ] = False,
) -> None:
    """Check the config file; list every error with file, line, policy and field (exit 2).

    A policy that selects no cluster is a warning (with --aws), not an error: clusters come
    and go, and retention still applies to what the policy owns.
    """
    cfg = load(config)
    from snapworker.config import resolve_config_path

    n = len(cfg.policies)
    typer.echo(f"{resolve_config_path(config)}: ok ({n} polic{'y' if n == 1 else 'ies'})")
    if not aws:
        return
    from snapworker.adapters.aws.redshift import RedshiftGateway, make_client
    from snapworker.core.planner import selects

    try:
        clusters = RedshiftGateway(make_client(cfg.aws), cfg.retry).list_clusters()
    except Exception as e:
        _aws_guard(e)
    for p in cfg.policies:
        chosen = [c for c in clusters.values() if selects(p, c)]
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
) -> None:
    """What the state DB holds: owned snapshots, grants, recent runs and failures."""
    cfg = load(config)
    from snapworker.adapters.store.repository import StateStoreError, open_store
    from snapworker.views.status import render_status

    try:
        store = open_store(cfg.state_url)
    except StateStoreError as e:
        fail(str(e))
    typer.echo(render_status(store, format.value, show_all=show_all))


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
    from snapworker.entrypoints.demo import run_demo

    raise typer.Exit(run_demo(state_url))


SnapshotArg = Annotated[str, typer.Argument(help="A snapshot id snapworker owns.")]


def _hold_command(snapshot: str, config: str | None, reason: str | None) -> None:
    """hold (reason given) or release (None): refusals exit 2 before any AWS mutation."""
    cfg = load(config)
    rt = runtime(cfg)
    from snapworker.adapters.aws.redshift import AwsError
    from snapworker.service.holds import HoldIncomplete, HoldRefused
    from snapworker.service.holds import hold as do_hold
    from snapworker.service.holds import release as do_release

    try:
        text = do_release(rt, snapshot) if reason is None else do_hold(rt, snapshot, reason)
    except HoldRefused as e:
        fail(str(e))
    except HoldIncomplete as e:
        fail(str(e), 1)
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


@app.command()
def daemon(config: ConfigOpt = None) -> None:
    """Run until SIGTERM/SIGINT: scheduled creates, a reconcile tick on an interval, events.

    SIGTERM/SIGINT: the action in flight finishes and is journalled, no new one starts,
    exit 0. SIGHUP: reload the config (a bad one is reported and the old one kept).
    """
    cfg = load(config)
    from snapworker.adapters.store.repository import StateStoreError
    from snapworker.config import resolve_config_path
    from snapworker.entrypoints.daemon import Daemon
    from snapworker.logs import configure

    configure()
    try:
        d = Daemon(cfg, resolve_config_path(config))
    except StateStoreError as e:
        fail(str(e))
    raise typer.Exit(d.run())


@app.command()
def credentials(
    cluster: Annotated[str, typer.Option("--cluster", help="ClusterIdentifier to connect to.")],
    config: ConfigOpt = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", "-p", help="Whose verify.connect to use (if several have one)."),
    ] = None,
    show_password: Annotated[
        bool,
        typer.Option("--show-password", help="Include the password (only to a terminal)."),
    ] = False,
) -> None:
    """Print a ready libpq connection string for an operator, from GetClusterCredentials.

    Uses the policy's verify.connect (db_user, db_name, db_groups, duration_seconds,
    auto_create, host/port override, sslmode), the same code path as the restore drills.
    The temporary password is printed only with --show-password, and only when stdout is a
    terminal (never into a pipe or a file); it is never logged.
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
    rt = runtime(cfg)
    from snapworker.service.drills import DrillError, connect_params, conninfo

    try:
        params = connect_params(rt.gateway, cluster, chosen.verify.connect)
    except DrillError as e:
        fail(str(e), 1)
    except Exception as e:
        _aws_guard(e)
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
        str, typer.Option(help="AWS account id the policy is for (12 digits), or '*'.")
    ] = "*",
    region: Annotated[
        str | None,
        typer.Option(help="AWS region, or '*'. Default: aws.region of the config, else '*'."),
    ] = None,
) -> None:
    """Print the least-privilege IAM policy (JSON) this config needs.

    Only the actions the config's features use (no share accounts: no
    AuthorizeSnapshotAccess; nothing that can expire: no DeleteClusterSnapshot; ...),
    scoped to the snapshots the worker makes (sw-<policy>-*) where Redshift allows it.
    """
    import re

    from snapworker.service.permissions import iam_policy as build
    from snapworker.service.permissions import render
    from snapworker.service.tick import UnknownPolicy, select_policies

    cfg = load(config)
    if account != "*" and re.fullmatch(r"[0-9]{12}", account) is None:
        fail(f"--account: must be a 12-digit AWS account id or '*' (got {account!r})")
    region_re = r"[a-z]{2}(-[a-z]+)+-[0-9]+"
    if region is not None and region != "*" and not re.fullmatch(region_re, region):
        fail(f"--region: must be an AWS region name like 'us-east-1' or '*' (got {region!r})")
    try:
        chosen = select_policies(cfg, policy)
    except UnknownPolicy as e:
        fail(str(e))
    typer.echo(render(build(cfg, account=account, region=region, policies=chosen)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
