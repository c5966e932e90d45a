"""The sandbox's own HTTP endpoints, for tests and benchmarks that drive a server in another
process (``snapworker.sandbox.server.serve`` wraps moto's WSGI app with
:func:`admin_middleware`):

- ``GET /_snapworker/calls``: the Redshift calls by operation (:func:`.counters.call_counts`);
  ``DELETE`` (or ``POST``) resets them;
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
from typing import Any
from urllib.parse import parse_qs

from snapworker.sandbox.moto_ext.common import DEFAULT_ACCOUNT, DEFAULT_REGION, WSGIApp
from snapworker.sandbox.moto_ext.counters import call_counts, reset_call_counts
from snapworker.sandbox.moto_ext.faults import (
    FaultPlan,
    choose_fault,
    clear_faults,
    fault_report,
    inject,
    redshift_request,
    set_fault_plan,
)
from snapworker.sandbox.moto_ext.lifecycle import (
    get_creating_polls,
    set_creating_polls,
    settle_all,
)
from snapworker.sandbox.moto_ext.seeding import backend, set_snapshot_sizes

ADMIN_PREFIX = "/_snapworker/"


def admin_middleware(app: WSGIApp) -> WSGIApp:
    """Wrap moto's WSGI app with ``/_snapworker/`` endpoints (see the module docstring)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(ADMIN_PREFIX):
            params = redshift_request(environ)
            fault = choose_fault(params["Action"], params) if params else None
            if params and fault:
                return inject(fault[0], params["Action"], fault[1], app, environ, start_response)
            return app(environ, start_response)
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        what = path[len(ADMIN_PREFIX) :].strip("/")
        body: Any
        status = "200 OK"
        if what == "calls" and method == "GET":
            body = call_counts()
        elif what == "calls" and method in ("DELETE", "POST"):
            reset_call_counts()
            body = {}
        elif what == "settle" and method == "POST":
            settle_all()
            body = {}
        elif what == "creating-polls" and method == "POST":
            query = parse_qs(str(environ.get("QUERY_STRING", "")))
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
