"""The Typer application and what every command shares: the options, loading the config,
wiring the runtime, and turning an error into one line and an exit code.

Commands live in ``entrypoints/commands/`` (imported by ``entrypoints/cli.py``, which registers
them on this app). Imports are made inside each command, so that ``snapworker validate`` does
not pay for boto3 and ``snapworker run`` does not pay for moto (cron starts us often).

Exit codes: 0 success, 1 some action failed (the others still ran), 2 bad usage or config.
Every error snapworker raises derives from ``SnapworkerError`` and carries its exit code;
:func:`report` is the one place that prints it (one line, no traceback).
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
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from snapworker.entrypoints.progress import ListingBar
from snapworker.errors import SnapworkerError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from typer._click.core import Context, Parameter

    from snapworker.adapters.store.repository import ScopedStore, StateStore
    from snapworker.config import Config
    from snapworker.core.model import Cluster, Snapshot
    from snapworker.service.bootstrap import FleetTargets
    from snapworker.service.fleet import FleetResult, SinglePair
    from snapworker.service.tick import Runtime, TickResult


def _clean_help(params: list[Parameter]) -> list[Parameter]:
    """No type placeholders in ``--help``: Typer renders ``<bool>`` for a flag (``--help``
    included), ``<str>`` for an argument, and ``{snapshot}`` for a required one in the usage
    line, when no metavar is set. A flag shows no metavar; an argument shows its name in
    capitals (``SNAPSHOT``) and no type."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
        elif isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            param.__class__ = _Argument  # the same object (no state added), rendered cleanly
    return params


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Context) -> str | None:
        return None  # the name column says it (SNAPSHOT); "<str>" adds nothing

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return [name + ("..." if self.nargs != 1 else "")]


class Command(TyperCommand):
    """Every command's class (see :func:`_clean_help`)."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _clean_help(super().get_params(ctx))

    def get_short_help_str(self, limit: int = 45) -> str:
        # The command list without rich (TYPER_USE_RICH=0) cuts the summary at 45
        # characters with "...": show the docstring's first sentence whole instead.
        return super().get_short_help_str(limit=1000)


class Group(TyperGroup):
    """The app's class (see :func:`_clean_help`)."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _clean_help(super().get_params(ctx))


class _App(typer.Typer):
    """Every command made with :class:`Command`."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)


def _version(value: bool) -> None:
    if value:
        # The installed distribution's version: a cheap read of its metadata, no import
        # of what the commands need.
        from importlib.metadata import version

        typer.echo(f"snapworker {version('snapworker')}")
        raise typer.Exit(0)


app = _App(
    name="snapworker",
    help=(
        "Keeps the manual snapshots of Amazon Redshift clusters on policy: takes them on a "
        "schedule, copies automated snapshots to manual ones, shares them, and revokes "
        "every grant before deleting what fell out of retention.\n\n"
        "Exit codes: 0 success, 1 some action failed (the others still ran), "
        "2 bad usage or config."
    ),
    no_args_is_help=True,
    cls=Group,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version (snapworker X.Y.Z) and exit.",
        ),
    ] = False,
) -> None:
    """The app's own options (--version); its help is the Typer(help=...) above."""


ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="Config file. Default: $SNAPWORKER_CONFIG, else ./snapworker.yaml.",
        show_default=False,
    ),
]
PolicyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--policy",
        "-p",
        metavar="NAME",
        help="Only this policy (repeat for several). Default: all.",
    ),
]

TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        "-t",
        metavar="GLOB",
        help="Only the targets whose name matches (a shell glob such as 'dr-*'; repeat for "
        "several). Default: every target of the config.",
    ),
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
        t: datetime | None = datetime.fromisoformat(value.strip())
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        fail(
            f"--at: not an ISO 8601 time with a timezone: {value!r} "
            "(for example 2027-01-15T00:00Z or 2027-01-15T00:00+01:00)"
        )
    return t.astimezone(UTC)


def dry_run(rt: Runtime[StateStore], policy: list[str] | None) -> TickResult:
    """One tick that applies nothing and records nothing (``plan``, ``report``)."""
    from snapworker.service.tick import tick

    listing = ListingBar()
    try:
        return tick(rt, policy, dry_run=True, listing=listing)
    except Exception as e:
        aws_guard(e)
    finally:
        listing.stop()


def fleet(
    config: Config,
    at: datetime | None = None,
    pace: Callable[[float], None] | None = None,
    backoff: Callable[[float], None] | None = None,
    *,
    create: bool = True,
) -> FleetTargets:
    """The fleet's adapters (every (target, region) pair of the config, each reached when
    first worked). ``at``: a clock stopped at that instant (``plan --at``); ``pace``: the
    rate limiters' wait; ``backoff``: the retry backoff's (default: time.sleep);
    ``create=False``: a state DB that does not exist yet is an error (exit 2)."""
    from snapworker.logs import configure
    from snapworker.service.bootstrap import fleet as make_fleet

    configure()
    clock: Callable[[], datetime] | None = None if at is None else (lambda: at)
    try:
        return make_fleet(config, clock=clock, pace=pace, backoff=backoff, create=create)
    except Exception as e:  # the state DB cannot be opened
        exit_for(e)


def fleet_dry_run(
    targets: FleetTargets,
    policy: list[str] | None,
    target: list[str] | None,
) -> FleetResult:
    """One tick over the selected pairs that applies nothing and records nothing (``plan``,
    ``report``). A listing bar on a terminal when there is one pair."""
    from snapworker.service.fleet import fleet_tick

    listing = ListingBar()
    try:
        return fleet_tick(
            targets.config,
            targets,
            policy_names=policy,
            target_globs=target,
            dry_run=True,
            listing=listing if len(targets.pairs()) == 1 else None,
            log=targets.log,
            clock=targets.clock,
        )
    except Exception as e:
        aws_guard(e)
    finally:
        listing.stop()


def print_pair_errors(result: FleetResult) -> None:
    """``error: TARGET/REGION: ...`` on stderr for each pair that was skipped."""
    for e in result.errors:
        typer.echo(e.line(), err=True)


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


def runtime(
    config: Config,
    at: datetime | None = None,
    sleep: Callable[[float], None] | None = None,
    *,
    create: bool = True,
    target: list[str] | None = None,
) -> Runtime[ScopedStore]:
    """The wired runtime of one (target, region) pair: the config's only one, else the one
    ``target`` (``--target`` globs) selects (none or several: exit 2 naming them), for the
    commands that act on one snapshot or cluster (``hold``, ``release``, ``credentials``).
    ``at``: a clock stopped at that instant; ``sleep``: the rate limiter's and the retry
    backoff's wait (default: time.sleep); ``create=False``: a state DB that does not exist
    yet is an error (exit 2), not a new one."""
    from snapworker.core.targets import select_pairs

    targets = fleet(config, at, pace=sleep, backoff=sleep, create=create)
    try:
        every = targets.pairs()
        pairs = select_pairs(every, target)
        if len(pairs) != 1:
            names = ", ".join(p.key for p in (pairs or every))
            chosen = "matches" if pairs else "matches none of"
            fail(
                f"this command works in one (target, region) pair; --target "
                f"{' '.join(target or ['(none)'])} {chosen} {len(pairs) or len(every)}: "
                f"{names} (name one with --target, e.g. --target {every[0].target})"
            )
        pair = pairs[0]
        return targets.runtime_for(pair, targets.account_of(pair))
    except typer.Exit:
        raise
    except Exception as e:  # the AWS client cannot be made, the role cannot be assumed
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


def aws_guard(exc: BaseException) -> NoReturn:
    """An error while reading the inventory or working on it (see :func:`report`)."""
    exit_for(exc, "could not read the inventory")


def config_risks(
    cfg: Config,
    config_path: str | None,
    account: str | None = None,
    clusters: Iterable[Cluster] | None = None,
    snapshots: Iterable[Snapshot] | None = None,
    seen: set[str] | None = None,
) -> None:
    """Print the config's warnings; exit 2 on an error only AWS reveals (sharing with the
    account that owns the snapshots). ``clusters``, ``snapshots``: the real ones, when AWS
    was asked. ``seen``: warnings already printed (a fleet asks once per pair), not again."""
    from snapworker.config import resolve_config_path
    from snapworker.config.risks import assess

    file = str(resolve_config_path(config_path))
    errors, warnings = assess(cfg, file, account=account, clusters=clusters, snapshots=snapshots)
    if errors:
        typer.echo("\n".join(map(str, errors)), err=True)
        raise typer.Exit(2)
    for problem in warnings:
        line = f"warning: {problem}"
        if seen is not None:
            if line in seen:
                continue
            seen.add(line)
        typer.echo(line, err=True)


def html_page(
    targets: FleetTargets | SinglePair,
    cfg: Config,
    policy: list[str] | None,
    result: FleetResult,
    *,
    what_if: bool,
    heading: str | None = None,
) -> str:
    """The HTML report of a fleet tick's plans, a section per pair, with the state DB's
    failures and drills now (``report --html``, ``plan --format html``, and the daemon's
    page)."""
    from snapworker.service.tick import select_policies
    from snapworker.views.html_report import ReportInput, render_fleet_html
    from snapworker.views.status import status_dict

    status = status_dict(targets.store)
    chosen = [p.core for p in select_policies(cfg, policy)]
    reports = []
    for pr in result.pairs:
        r = pr.result
        if r is None or r.inventory is None:
            continue
        account = targets.account_of(pr.pair)
        rt = targets.runtime_for(pr.pair, account)
        reports.append(
            (
                pr.pair,
                ReportInput(
                    plan=r.plan,
                    inventory=r.inventory,
                    state=rt.store.load_state(),
                    policies=[p for p in chosen if p.name in _names(cfg, pr.pair.target)],
                    account=account,
                    all_policy_names=[p.name for p in cfg.policies],
                    status=status,
                    what_if=what_if,
                    heading=heading,
                    price=cfg.report.price_per_gb_month,
                ),
            )
        )
    return render_fleet_html(reports, result.errors, heading)


def _names(cfg: Config, target: str) -> set[str]:
    return {p.name for p in cfg.policies_for(target)}
