"""``snapworker demo`` and ``snapworker sandbox``: the demo estate, for a first look.

moto stands in for AWS (with snapworker's extension, so copies, shares and revokes work),
seeded with demo clusters and automated snapshots of several ages.

- ``demo`` runs in-process: it prints the plan, runs ticks until there is nothing left to do
  (a copy is shared on the tick after it became available, as against AWS); then it moves
  the sandbox's clock (and its own runtime's, nothing global) :data:`LATER_DAYS` on, so that
  retention expires the oldest copies, prints that plan (with the sizes and what the
  deletions free) and runs again: each grant revoked, then the delete. It shows the state
  DB's summary and writes the HTML report (``report --html``) to a temp file it names.
- ``sandbox`` serves the same estate on moto's server until Ctrl-C, and prints the
  environment and a config to try every other command by hand against it. Plain
  ``moto_server`` cannot stand in: it lacks copy, share and revoke.

Both import the sandbox (and moto, the ``sandbox`` extra) only when they run.
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

DEMO_CONFIG = """\
# The embedded sandbox's config (snapworker demo); config/sandbox.yaml is the same file.
state_url: sqlite:///snapworker-demo.db
aws:
  region: us-east-1
policies:
  - name: prod-nightly
    select:
      clusters: ["prod-*"]
      tags: {env: prod}
    create:
      schedule: "0 3 * * *"
      timezone: UTC
    copy_automated: true
    share:
      accounts: ["111122223333", "amazon-redshift-support"]
    retention:
      max_age_days: 35
      keep_last: 3
    limits:
      max_deletes_per_run: 20
"""


LATER_DAYS = 25
"""How far the demo moves the sandbox's clock after the runs at today's date: far enough
that retention (max_age_days 35, keep_last 3) expires the copies of the 12- and 30-day-old
automated snapshots, so the demo shows the dangerous half (revoke every grant, then delete)."""


def run_demo(state_url: str | None = None, max_ticks: int = 4) -> int:
    try:
        from snapworker.sandbox import moto_ext
        from snapworker.sandbox.server import embedded
    except ImportError:  # pragma: no cover - depends on the install
        typer.echo("snapworker demo needs moto: pip install 'snapworker[sandbox]'", err=True)
        return 2
    from snapworker.config import load_config
    from snapworker.entrypoints.app import html_page
    from snapworker.logs import configure
    from snapworker.service.bootstrap import fleet
    from snapworker.service.fleet import fleet_tick
    from snapworker.views.plan_report import render_table
    from snapworker.views.status import render_status

    configure(level="warning")
    shift = [timedelta(0)]  # the demo runtime's clock, moved with the sandbox's (never global)

    def clock() -> datetime:
        return datetime.now(UTC) + shift[0]

    with tempfile.TemporaryDirectory(prefix="snapworker-demo-") as tmp:
        path = Path(tmp) / "sandbox.yaml"
        path.write_text(DEMO_CONFIG)
        cfg = load_config(path)
        url = state_url or f"sqlite:///{Path(tmp) / 'state.db'}"
        # The sandbox answers at once: pace at 20 mutating calls a second, not AWS's 5.
        fast = cfg.aws.model_copy(update={"max_calls_per_second": 20.0})
        cfg = cfg.model_copy(update={"state_url": url, "aws": fast})
        price = cfg.report.price_per_gb_month
        with embedded(clock()):
            targets = fleet(cfg, clock=clock)

            def dry() -> Any:
                return fleet_tick(cfg, targets, dry_run=True, clock=clock)

            typer.echo("== snapworker plan (dry run: nothing is changed) ==")
            typer.echo(render_table(dry().plans, price=price))
            code, n = _runs(targets, 1, max_ticks)
            typer.echo(
                f"\n== {LATER_DAYS} days later (the sandbox's clock only): retention expires "
                "the oldest copies =="
            )
            shift[0] = timedelta(days=LATER_DAYS)
            moto_ext.set_clock_shift(shift[0])
            typer.echo("\n== snapworker plan (dry run: nothing is changed) ==")
            typer.echo(render_table(dry().plans, price=price))
            more, _ = _runs(targets, n, max_ticks)
            code = max(code, more)
            typer.echo("\n== snapworker status ==")
            typer.echo(render_status(targets.store, price=price))
            page = html_page(targets, cfg, None, dry(), what_if=False)
            targets.store.close()
    report = Path(tempfile.mkdtemp(prefix="snapworker-demo-report-")) / "report.html"
    report.write_text(page, encoding="utf-8")
    typer.echo(f"\n== snapworker report --html: {report} ==")
    typer.echo("(the retention timeline of each cluster; open it in a browser, delete it after)")
    return code


def _runs(targets: Any, first: int, max_ticks: int) -> tuple[int, int]:
    """Run ticks until one has nothing to do; returns (exit code, the next run's number)."""
    from snapworker.service.fleet import fleet_tick
    from snapworker.views.plan_report import render_outcomes

    code = 0
    for n in range(first, first + max_ticks):
        result = fleet_tick(targets.config, targets, clock=targets.clock)
        if not any(pp.plan.actions for pp in result.plans) and not result.errors:
            typer.echo(f"\n== snapworker run #{n}: nothing to do; the account is on policy ==")
            return code, n + 1
        typer.echo(f"\n== snapworker run #{n} ==")
        typer.echo(render_outcomes(result.outcomes))
        code = max(code, result.exit_code)
    return code, first + max_ticks


SANDBOX_CONFIG_NAME = "snapworker.yaml"
_DEMO_STATE_URL = "state_url: sqlite:///snapworker-demo.db"


def sandbox_environment(url: str, config: Path) -> dict[str, str]:
    """What a shell exports to point every command at the sandbox served at *url*."""
    from snapworker.sandbox.server import DEMO_REGION, FAKE_CREDENTIALS

    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "AWS_SESSION_TOKEN": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        "AWS_REGION": DEMO_REGION,
        "AWS_DEFAULT_REGION": DEMO_REGION,
        "SNAPWORKER_CONFIG": str(config),
    }


def sandbox_config(tmp: Path) -> Path:
    """The demo's config, its state DB in *tmp*: what ``snapworker sandbox`` hands out."""
    assert _DEMO_STATE_URL in DEMO_CONFIG
    path = tmp / SANDBOX_CONFIG_NAME
    path.write_text(
        DEMO_CONFIG.replace(_DEMO_STATE_URL, f"state_url: sqlite:///{tmp / 'state.db'}")
    )
    return path


def _banner(url: str, env: dict[str, str], tmp: str, clusters: dict[str, dict[str, str]]) -> str:
    names = ", ".join(
        f"{cid} ({' '.join(f'{k}={v}' for k, v in tags.items())})" for cid, tags in clusters.items()
    )
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return (
        f"snapworker sandbox: the demo estate on {url}\n"
        "(moto's server with snapworker's Redshift extension, so copy, share and revoke work)\n"
        f"clusters {names}, automated snapshots of several ages.\n"
        "\n"
        "Export this in another shell, then try any command against it:\n"
        "\n"
        f"export {exports}\n"
        "\n"
        "    snapworker plan\n"
        "    snapworker run\n"
        "    snapworker status\n"
        "\n"
        f"The config and its state DB are in {tmp}; they go when the sandbox stops,\n"
        "with everything it holds. Ctrl-C stops it.\n"
    )


def run_sandbox(host: str, port: int) -> int:
    """Serve the demo estate on moto's server until SIGINT or SIGTERM (then exit 0)."""
    try:  # imported here: moto is an optional extra, and loading it takes a while
        import moto  # noqa: F401

        from snapworker.sandbox.server import DEMO_CLUSTERS, seed_demo, serve
    except ImportError:
        typer.echo("snapworker sandbox needs moto: pip install 'snapworker[sandbox]'", err=True)
        return 2

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with tempfile.TemporaryDirectory(prefix="snapworker-sandbox-") as tmp:
            try:
                server, url = serve(host, port)
            except OSError as e:
                typer.echo(f"snapworker: {e} (--port 0 picks a free port)", err=True)
                return 2
            try:
                seed_demo(datetime.now(UTC), endpoint_url=url)
                config = sandbox_config(Path(tmp))
                typer.echo(_banner(url, sandbox_environment(url, config), tmp, DEMO_CLUSTERS))
                sys.stdout.flush()
                while not stop.wait(0.5):
                    pass
            finally:
                server.stop()
        typer.echo("snapworker sandbox: stopped", err=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
