"""``snapworker demo``: the main job against an embedded sandbox, for a first look.

moto stands in for AWS (with snapworker's extension, so copies, shares and revokes work),
seeded with demo clusters and automated snapshots of several ages. The demo prints the plan,
runs ticks until there is nothing left to do (a copy is shared on the tick after it became
available, as against AWS), and shows the state DB's summary.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

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


def run_demo(state_url: str | None = None, max_ticks: int = 4) -> int:
    try:
        from snapworker.sandbox.server import embedded
    except ImportError:  # pragma: no cover - depends on the install
        typer.echo("snapworker demo needs moto: pip install 'snapworker[sandbox]'", err=True)
        return 2
    from snapworker.config import load_config
    from snapworker.logs import configure
    from snapworker.service.bootstrap import bootstrap
    from snapworker.service.tick import tick
    from snapworker.views.plan_report import render_outcomes, render_table
    from snapworker.views.status import render_status

    configure(level="warning")
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="snapworker-demo-") as tmp:
        path = Path(tmp) / "sandbox.yaml"
        path.write_text(DEMO_CONFIG)
        cfg = load_config(path)
        url = state_url or f"sqlite:///{Path(tmp) / 'state.db'}"
        cfg = cfg.model_copy(update={"state_url": url})
        with embedded(now):
            rt = bootstrap(cfg)
            typer.echo("== snapworker plan (dry run: nothing is changed) ==")
            typer.echo(render_table(tick(rt, dry_run=True).plan))
            code = 0
            for n in range(1, max_ticks + 1):
                result = tick(rt)
                if not result.plan.actions:
                    typer.echo(
                        f"\n== snapworker run #{n}: nothing to do; the account is on policy =="
                    )
                    break
                typer.echo(f"\n== snapworker run #{n} ==")
                typer.echo(render_outcomes(result.outcomes))
                code = max(code, result.exit_code)
            typer.echo("\n== snapworker status ==")
            typer.echo(render_status(rt.store))
            rt.store.close()
    return code
