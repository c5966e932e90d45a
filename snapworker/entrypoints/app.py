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
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, NoReturn

# snapworker uses no pydantic plugin, and looking for them scans every installed package's
# entry points (~13 ms of each start); an operator's own setting still wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer

from snapworker.errors import SnapworkerError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from snapworker.adapters.store.repository import StateStore
    from snapworker.config import Config
    from snapworker.core.model import Cluster, Snapshot
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


def aws_guard(exc: BaseException) -> NoReturn:
    """An error while reading the inventory or working on it (see :func:`report`)."""
    exit_for(exc, "could not read the inventory")


def config_risks(
    cfg: Config,
    config_path: str | None,
    account: str | None = None,
    clusters: Iterable[Cluster] | None = None,
    snapshots: Iterable[Snapshot] | None = None,
) -> None:
    """Print the config's warnings; exit 2 on an error only AWS reveals (sharing with the
    account that owns the snapshots). ``clusters``, ``snapshots``: the real ones, when AWS
    was asked."""
    from snapworker.config import resolve_config_path
    from snapworker.config.risks import assess

    file = str(resolve_config_path(config_path))
    errors, warnings = assess(cfg, file, account=account, clusters=clusters, snapshots=snapshots)
    if errors:
        typer.echo("\n".join(map(str, errors)), err=True)
        raise typer.Exit(2)
    for problem in warnings:
        typer.echo(f"warning: {problem}", err=True)
