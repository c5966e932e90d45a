"""The command line (Typer). Commands only parse, wire and print; the work is elsewhere.

Imports are made inside each command, so that ``snapworker validate`` does not pay for
boto3 and ``snapworker run`` does not pay for moto (cron starts us often).

Exit codes: 0 success, 1 some action failed (the others still ran), 2 bad usage or config.
Every error snapworker raises derives from ``SnapworkerError`` and carries its exit code;
:func:`report` is the one place that prints it (one line, no traceback).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

# snapworker uses no pydantic plugin, and looking for them scans every installed package's
# entry points (~13 ms of each start); an operator's own setting still wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer

from snapworker.errors import SnapworkerError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from snapworker.adapters.store.repository import StateStore
    from snapworker.config import Config
    from snapworker.core.model import Cluster, Plan
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


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"snapworker: {message}", err=True)
    raise typer.Exit(code)


def load(config_path: str | None) -> Config:
    from snapworker.config import ConfigError, load_config, resolve_config_path

    path = resolve_config_path(config_path)
    try:
        return load_config(path)
    except ConfigError as e:
        exit_for(e)


def runtime(config: Config) -> Runtime[StateStore]:
    from snapworker.logs import configure
    from snapworker.service.bootstrap import bootstrap

    configure()
    try:
        return bootstrap(config)
    except Exception as e:  # the state DB cannot be opened, the AWS client cannot be made
        exit_for(e)


def exit_for(exc: BaseException, doing: str | None = None) -> NoReturn:
    """Exit with :func:`report`'s code for ``exc`` (see there); ``doing`` says what failed."""
    raise typer.Exit(report(exc, doing))


def report(exc: BaseException, doing: str | None = None) -> int:
    """The one place where an error becomes one line on stderr and an exit code: every
    :class:`snapworker.errors.SnapworkerError` exits with its ``exit_code`` (1: AWS refused
    or failed, 2: the setup must be fixed first), never with a traceback. ``doing`` (what the
    command was doing, e.g. "could not read the inventory") prefixes an AWS error and marks a
    state DB failure as one in the middle of the work. Anything else is re-raised (a bug)."""
    from snapworker.config import ConfigError

    if isinstance(exc, ConfigError):  # its own format: one line per problem, with locations
        typer.echo(str(exc), err=True)
        return exc.exit_code
    if "botocore" in sys.modules:  # else nothing botocore could have raised this
        from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError

        from snapworker.adapters.aws import redshift

        if isinstance(exc, NoRegionError):
            return _say(redshift.NO_REGION, 2)
        if isinstance(exc, NoCredentialsError):
            return _say(redshift.NO_CREDENTIALS, 2)
        if isinstance(exc, BotoCoreError):
            return _say(f"could not reach AWS: {exc}", 1)
        if isinstance(exc, redshift.AwsError):
            if exc.credentials_refused:
                return _say(
                    f"AWS refused the credentials ({exc}): renew them (standard chain: env, "
                    "profile, instance role)",
                    exc.exit_code,
                )
            return _say(f"{doing}: {exc}" if doing else str(exc), exc.exit_code)
    store = sys.modules.get("snapworker.adapters.store.repository")
    if doing and store is not None and isinstance(exc, store.StateStoreError):
        # Locked past the busy timeout, read-only, not a database...: the journal cannot be
        # written, so no AWS mutation is attempted (each is journalled first). Exit 2, like
        # a state DB that cannot be opened at all: the setup needs fixing, not the run.
        return _say(f"{exc}; stopped before changing anything in AWS that it could not journal", 2)
    if isinstance(exc, SnapworkerError):
        return _say(str(exc), exc.exit_code)
    raise exc


def _say(message: str, code: int) -> int:
    typer.echo(f"snapworker: {message}", err=True)
    return code


def _aws_guard(exc: BaseException) -> NoReturn:
    """An error while reading the inventory or working on it (see :func:`report`)."""
    exit_for(exc, "could not read the inventory")


@app.command()
def run(config: ConfigOpt = None, policy: PolicyOpt = None) -> None:
    """One tick over every policy (or --policy NAME), then exit. For cron.

    Copies new automated snapshots, takes the manual snapshots that are due, shares them,
    and revokes then deletes what fell out of retention (at most max_deletes_per_run per
    policy). Prints what it did; exits 1 if any action failed.
    """
    cfg = load(config)
    rt = runtime(cfg)
    from snapworker.service.tick import tick
    from snapworker.views.plan_report import render_outcomes, summary

    progress = _Progress()

    def on_plan(p: Plan) -> None:
        typer.echo(f"plan: {summary(p)}")
        progress.start(len(p.actions))

    try:
        result = tick(rt, policy, progress=progress.update, on_plan=on_plan)
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
    format: Annotated[Format, typer.Option("--format", "-f", help=FORMAT_HELP)] = Format.table,
    explain: Annotated[
        str | None,
        typer.Option(
            "--explain",
            metavar="SNAPSHOT",
            help="Only this snapshot's whole decision: owner, age, each rule, hold, grants, "
            "drift, actions (an unknown snapshot: exit 2).",
        ),
    ] = None,
) -> None:
    """The dry-run report: what `run` would do now, and why.

    Lists every owned snapshot as kept (with each rule that keeps it) or acted on (with the
    reason). Changes nothing in AWS and records nothing in the state DB.
    """
    cfg = load(config)
    rt = runtime(cfg)
    from snapworker.service.tick import tick
    from snapworker.views.plan_report import render

    try:
        result = tick(rt, policy, dry_run=True)
    except Exception as e:
        _aws_guard(e)
    clusters = result.inventory.clusters.values() if result.inventory is not None else ()
    _config_risks(cfg, config, rt.gateway.account_id(), clusters)
    if explain is not None:
        _explain(rt, cfg, policy, result, explain, format.value)
        return
    for n in result.plan.notes:
        if n.level == "warning":
            typer.echo(f"warning: {n.policy}: {n.message}", err=True)
    typer.echo(render(result.plan, format.value))


def _config_risks(
    cfg: Config,
    config_path: str | None,
    account: str | None = None,
    clusters: Iterable[Cluster] | None = None,
) -> None:
    """Print the config's warnings; exit 2 on an error only AWS reveals (sharing with the
    account that owns the snapshots). ``clusters``: the real ones, when AWS was asked."""
    from snapworker.config import resolve_config_path
    from snapworker.config.risks import assess

    file = str(resolve_config_path(config_path))
    errors, warnings = assess(cfg, file, account=account, clusters=clusters)
    if errors:
        typer.echo("\n".join(map(str, errors)), err=True)
        raise typer.Exit(2)
    for problem in warnings:
        typer.echo(f"warning: {problem}", err=True)


def _explain(
    rt: Runtime, cfg: Config, policy: list[str] | None, result: Any, sid: str, fmt: str
) -> None:
    from snapworker.core.explain import UnknownSnapshot, explain
    from snapworker.service.tick import select_policies
    from snapworker.views.explanation import render_explanation

    try:
        e = explain(
            sid,
            [p.core for p in select_policies(cfg, policy)],
            result.inventory,
            rt.store.load_state(),
            result.plan.generated_at,
            rt.gateway.account_id(),
            [p.name for p in cfg.policies],
        )
    except UnknownSnapshot as exc:
        fail(str(exc))
    typer.echo(render_explanation(e, fmt))


@app.command()
def validate(
    config: ConfigOpt = None,
    aws: Annotated[
        bool,
        typer.Option(
            "--aws",
            help="Also read the cluster list (DescribeClusters, read-only): warn about each "
            "policy that selects no cluster and about policies copying the same cluster's "
            "automated snapshots, and refuse sharing with the account that owns the "
            "snapshots. Without it, validate makes no AWS call.",
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
        _config_risks(cfg, config)
        return
    from snapworker.adapters.aws.redshift import RedshiftGateway, make_client
    from snapworker.core.planner import selects

    try:
        gateway = RedshiftGateway(make_client(cfg.aws), cfg.retry)
        clusters = gateway.list_clusters()
    except Exception as e:
        _aws_guard(e)
    _config_risks(cfg, config, gateway.account_id(), clusters.values())
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
) -> None:
    """What the state DB holds: owned snapshots, grants, recent runs and failures."""
    cfg = load(config)
    from snapworker.adapters.store.repository import open_store
    from snapworker.views.status import render_status

    store = open_store(cfg.state_url)
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


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 5055,
) -> None:
    """Serve the demo estate on moto's server, to try every command by hand.

    moto with snapworker's Redshift extension (plain moto_server lacks copy, share and
    revoke), seeded as for `demo`. Prints the environment to export and a config to use;
    stops on Ctrl-C or SIGTERM. Needs the `sandbox` extra (moto).
    """
    from snapworker.entrypoints.demo import run_sandbox

    raise typer.Exit(run_sandbox(host, port))


SnapshotArg = Annotated[str, typer.Argument(help="A snapshot id snapworker owns.")]


def _hold_command(snapshot: str, config: str | None, reason: str | None) -> None:
    """hold (reason given) or release (None): refusals exit 2 before any AWS mutation."""
    cfg = load(config)
    rt = runtime(cfg)
    from snapworker.service.holds import hold as do_hold
    from snapworker.service.holds import release as do_release

    try:
        text = do_release(rt, snapshot) if reason is None else do_hold(rt, snapshot, reason)
    except Exception as e:
        exit_for(e, f"{'release' if reason is None else 'hold'} {snapshot} failed")
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
    from snapworker.config import resolve_config_path
    from snapworker.entrypoints.daemon import Daemon
    from snapworker.logs import configure

    configure()
    d = Daemon(cfg, resolve_config_path(config))
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
    from snapworker.service.database import connect_params, conninfo

    try:
        params = connect_params(rt.gateway, cluster, chosen.verify.connect)
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
    from snapworker.service.tick import select_policies

    cfg = load(config)
    if account != "*" and re.fullmatch(r"[0-9]{12}", account) is None:
        fail(f"--account: must be a 12-digit AWS account id or '*' (got {account!r})")
    region_re = r"[a-z]{2}(-[a-z]+)+-[0-9]+"
    if region is not None and region != "*" and not re.fullmatch(region_re, region):
        fail(f"--region: must be an AWS region name like 'us-east-1' or '*' (got {region!r})")
    chosen = select_policies(cfg, policy)
    typer.echo(render(build(cfg, account=account, region=region, policies=chosen)))


def main() -> None:
    try:
        app()
    except SnapworkerError as e:  # what a command let through: still one line, its exit code
        sys.exit(report(e))


if __name__ == "__main__":
    main()
