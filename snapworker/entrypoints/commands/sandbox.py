"""`demo` and `sandbox`: the embedded moto estate, to try snapworker with no AWS account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from snapworker.entrypoints.app import (
    app,
)

if TYPE_CHECKING:
    pass


@app.command()
def demo(
    state_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="State DB for the demo. Default: a fresh file in a temp directory."
        ),
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
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", help="Port to listen on; 0 picks a free one.")
    ] = 5055,
) -> None:
    """Serve the demo estate on moto's server, to try every command by hand.

    moto with snapworker's Redshift extension (plain moto_server lacks copy, share and
    revoke), seeded as for `demo`. Prints the environment to export and a config to use;
    stops on Ctrl-C or SIGTERM. Needs the `sandbox` extra (moto).
    """
    from snapworker.entrypoints.demo import run_sandbox

    raise typer.Exit(run_sandbox(host, port))
