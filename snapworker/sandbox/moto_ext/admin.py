"""The sandbox's own HTTP endpoints, for tests and benchmarks that drive a server in another
process (``snapworker.sandbox.server.serve`` wraps moto's WSGI app with
:func:`admin_middleware`):

- ``GET /_snapworker/calls``: the Redshift calls by operation (:func:`.counters.call_counts`;
  ``?account=ID&region=R`` for one account or region's); ``?by=pair``: a list of
  ``[account, region, operation, target, count]`` (:func:`.counters.call_counts_by_pair`);
  ``DELETE`` (or ``POST``) resets them;
- ``POST /_snapworker/seed`` with ``{"now": ISO, "account": ID, "region": R}`` (account and
  region default to 123456789012 and us-east-1): the demo estate of
  :func:`snapworker.sandbox.server.seed_demo` in that account and region (the same cluster and
  snapshot ids in every pair seeded);
- ``POST /_snapworker/settle``: every ``creating`` snapshot becomes ``available``;
- ``POST /_snapworker/creating-polls?n=N``: :func:`.lifecycle.set_creating_polls`;
- ``GET /_snapworker/faults``: :func:`.faults.fault_report`; ``DELETE``: clear the plan and
  the counts; ``POST`` with a plan as JSON: arm it (see :mod:`.faults`);
- ``POST /_snapworker/sizes`` with ``{"snapshot": ID, "total_mb": X, "incremental_mb": Y}``
  (and optionally ``"account"``, ``"region"``): the sizes DescribeClusterSnapshots reports
  for that snapshot (:func:`.seeding.set_snapshot_sizes`).

Every other request goes to moto, through fault injection when a plan is armed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from snapworker.sandbox.moto_ext.common import DEFAULT_ACCOUNT, DEFAULT_REGION, WSGIApp
from snapworker.sandbox.moto_ext.counters import (
    call_counts,
    call_counts_by_pair,
    reset_call_counts,
)
from snapworker.sandbox.moto_ext.faults import (
    FaultPlan,
    choose_fault,
    clear_faults,
    fault_report,
    inject,
    redshift_request,
    refuse_assume_role,
    refused_assume_role,
    set_fault_plan,
)
from snapworker.sandbox.moto_ext.lifecycle import (
    get_creating_polls,
    set_creating_polls,
    settle_all,
)
from snapworker.sandbox.moto_ext.seeding import backend, set_snapshot_sizes

ADMIN_PREFIX = "/_snapworker/"


Seeder = Callable[..., None]
"""``seed(now, region, *, endpoint_url, account_id)``: what ``POST /_snapworker/seed`` runs
(``snapworker.sandbox.server.seed_demo``, handed in by the server that owns the demo)."""


def admin_middleware(app: WSGIApp, seed: Seeder | None = None) -> WSGIApp:
    """Wrap moto's WSGI app with ``/_snapworker/`` endpoints (see the module docstring);
    ``seed`` serves ``POST /_snapworker/seed`` (without it, 404)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(ADMIN_PREFIX):
            role = refused_assume_role(environ)
            if role is not None:
                return refuse_assume_role(role, environ, start_response)
            params = redshift_request(environ)
            fault = choose_fault(params["Action"], params) if params else None
            if params and fault:
                return inject(
                    fault[0],
                    params["Action"],
                    fault[1],
                    app,
                    environ,
                    start_response,
                    account=params["_account"],
                )
            return app(environ, start_response)
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        what = path[len(ADMIN_PREFIX) :].strip("/")
        body: Any
        status = "200 OK"
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        if what == "calls" and method == "GET" and query.get("by") == ["pair"]:
            body = [[*key, n] for key, n in call_counts_by_pair().items()]
        elif what == "calls" and method == "GET":
            body = call_counts(query.get("account", [None])[0], query.get("region", [None])[0])
        elif what == "calls" and method in ("DELETE", "POST"):
            reset_call_counts()
            body = {}
        elif what == "settle" and method == "POST":
            settle_all()
            body = {}
        elif what == "seed" and method == "POST" and seed is not None:
            try:
                req = _json_body(environ)
                account = str(req.get("account", DEFAULT_ACCOUNT))
                region = str(req.get("region", DEFAULT_REGION))
                now = datetime.fromisoformat(str(req["now"]).replace("Z", "+00:00"))
                url = f"{environ.get('wsgi.url_scheme', 'http')}://{environ['HTTP_HOST']}"
                seed(now, region, endpoint_url=url, account_id=account)
                body = {"account": account, "region": region, "now": now.isoformat()}
            except (ValueError, TypeError, KeyError) as exc:
                status, body = "400 Bad Request", {"error": f"bad seed: {exc!r}"}
        elif what == "creating-polls" and method == "POST":
            try:
                set_creating_polls(int(query.get("n", [""])[0]))
                body = {"creating_polls": get_creating_polls()}
            except ValueError:
                status, body = "400 Bad Request", {"error": "n must be an integer >= 0"}
        elif what == "faults" and method == "GET":
            body = fault_report()
        elif what == "faults" and method == "DELETE":
            clear_faults()
            body = {}
        elif what == "sizes" and method == "POST":
            try:
                req = _json_body(environ)
                be = backend(req.get("account", DEFAULT_ACCOUNT), req.get("region", DEFAULT_REGION))
                total, incremental = float(req["total_mb"]), float(req["incremental_mb"])
                set_snapshot_sizes(be, str(req["snapshot"]), total, incremental)
                body = {
                    "snapshot": req["snapshot"],
                    "total_mb": total,
                    "incremental_mb": incremental,
                }
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                status, body = "400 Bad Request", {"error": f"bad sizes: {exc!r}"}
        elif what == "faults" and method == "POST":
            try:
                plan = FaultPlan.from_json(_json_body(environ))
                set_fault_plan(plan)
                body = {"plan": plan.to_json()}
            except (ValueError, TypeError, AttributeError) as exc:
                status, body = "400 Bad Request", {"error": f"bad fault plan: {exc}"}
        else:
            status, body = "404 Not Found", {"error": f"no such endpoint: {method} {path}"}
        data = json.dumps(body, sort_keys=True).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return wrapped


def _json_body(environ: dict[str, Any]) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length > 0 else b"{}"
    return json.loads(raw or b"{}")
