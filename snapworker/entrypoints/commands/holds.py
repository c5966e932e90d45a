"""`hold` and `release`: set or clear the hold tag on an owned snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from snapworker.entrypoints.app import (
    ConfigOpt,
    TargetOpt,
    app,
    exit_for,
    load,
    runtime,
)

if TYPE_CHECKING:
    pass


SnapshotArg = Annotated[
    str, typer.Argument(metavar="SNAPSHOT", help="A snapshot id snapworker owns.")
]


def _hold_command(
    snapshot: str, config: str | None, reason: str | None, target: list[str] | None
) -> None:
    """hold (reason given) or release (None): refusals exit 2 before any AWS mutation."""
    cfg = load(config)
    rt = runtime(cfg, target=target)
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
            "--reason",
            "-r",
            metavar="TEXT",
            help="Why it is held: the hold tag's value (at most 256 characters).",
        ),
    ],
    config: ConfigOpt = None,
    target: TargetOpt = None,
) -> None:
    """Hold an owned snapshot: never revoked nor deleted, whatever the rules say.

    Sets the owning policy's hold tag (hold_tag, default snapworker:hold) to the reason. An
    unknown snapshot, or one snapworker does not own, is refused (exit 2), unchanged.
    """
    _hold_command(snapshot, config, reason, target)


@app.command()
def release(snapshot: SnapshotArg, config: ConfigOpt = None, target: TargetOpt = None) -> None:
    """Release a held snapshot: clears the hold tag; the policy's rules decide again.

    An unknown snapshot, or one snapworker does not own, is refused (exit 2), unchanged.
    """
    _hold_command(snapshot, config, None, target)
