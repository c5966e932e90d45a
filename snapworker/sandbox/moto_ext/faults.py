"""Fault injection (server mode only), so that the worker is tested end to end with its real
botocore client: real sockets, real retry handling.

Faults are injected *server-side*, in :func:`.admin.admin_middleware`, on the HTTP requests
that reach the sandbox, so the same plan works whatever process the client runs in. A
:class:`FaultPlan` (set in-process with :func:`set_fault_plan`, or ``POST /_snapworker/faults``
with the plan as JSON: ``seed``, ``rate``, ``kinds``, ``operations``, ``snapshots``,
``max_consecutive``, ``max_timeouts``, ``stall_seconds``, ``latency_seconds``) decides, from a
``random.Random(seed)`` drawn once per matching Redshift request, whether that request fails
and how (see :data:`FAULT_KINDS`):

- ``throttling`` (400 ``Throttling``), ``internal`` (500 ``InternalFailure``), ``unavailable``
  (503 ``ServiceUnavailable``): an error response; the request is not processed.
- ``reset``: the connection is dropped with a TCP reset and no response; not processed
  (the request never reached the service).
- ``timeout``: the request *is* processed, then the server stalls ``stall_seconds`` before
  answering, so a client whose read timeout is shorter gives up and retries a call that
  succeeded (the answer was lost). At most ``max_timeouts`` per plan: each costs real time.
- ``busy``: Redshift's "try later" state faults, only on the operations that have one:
  CreateClusterSnapshot -> ``InvalidClusterState``, CopyClusterSnapshot ->
  ``InvalidClusterSnapshotState``.
- permanent faults, meant to be aimed at one operation and snapshot with ``rate`` 1:
  ``access-denied`` (403 ``AccessDenied``), ``invalid-parameter`` (``InvalidParameterValue``),
  ``quota-exceeded`` (``ClusterSnapshotQuotaExceeded``), ``unauthorized``
  (``UnauthorizedOperation``).

A slow server: with ``latency_seconds``, every request the plan applies to that gets no fault is
processed at once (so it is counted when it arrives), then answered that much later; ``rate``
may be 0. A test can then stop a worker while its calls are in flight.

``operations``, ``snapshots``, ``accounts`` and ``regions`` (empty: all) restrict the requests a
plan applies to (the account is the one moto maps the request's access key to, so an assumed
role's requests are its account's; the region is the one the request is signed for);
``max_consecutive`` (0: no cap) bounds the faults in a row on one request (same operation,
snapshot and account), so a transient plan can be made to always let a call through within
the client's retry budget. The "creating for several ticks" and "busy cluster for a while"
conditions are separate tools: :func:`.lifecycle.set_creating_polls` and
:func:`.seeding.set_cluster_status`. Every Redshift request through the middleware is also
logged by (operation, target), faulted or not, so tests can bound the HTTP calls made for
one action, and by (account, region, operation, target) for a fleet.

``refuse_assume_role`` (role ARNs) makes STS refuse AssumeRole of those roles with 403
``AccessDenied``, as AWS answers when the role's trust policy does not allow the caller,
whatever ``rate`` says; the refusals are counted by role.

:func:`fault_report` (``GET /_snapworker/faults``) returns the plan, faults
injected by kind and the request counts; :func:`clear_faults` (``DELETE
/_snapworker/faults``) removes the plan and zeroes the counts.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from snapworker.sandbox.moto_ext.common import WSGIApp
from snapworker.sandbox.moto_ext.counters import request_target

FAULT_KINDS = (
    "throttling",
    "internal",
    "unavailable",
    "reset",
    "timeout",
    "busy",
    "access-denied",
    "invalid-parameter",
    "quota-exceeded",
    "unauthorized",
)
TRANSIENT_FAULT_KINDS = ("throttling", "internal", "unavailable", "reset", "timeout", "busy")

# kind -> (HTTP status, wire code, message); busy and permanent ones may depend on the operation
_ERROR_FAULTS: dict[str, tuple[int, str, str]] = {
    "throttling": (400, "Throttling", "Rate exceeded"),
    "internal": (500, "InternalFailure", "We encountered an internal error. Please try again."),
    "unavailable": (503, "ServiceUnavailable", "Service is unavailable. Please try again later."),
    "access-denied": (
        403,
        "AccessDenied",
        "User: arn:aws:iam::{account}:user/snapworker is not authorized to perform: "
        "redshift:{op} on resource: {target} because no identity-based policy allows the "
        "redshift:{op} action",
    ),
    "invalid-parameter": (400, "InvalidParameterValue", "Invalid parameter value for {op}."),
    "quota-exceeded": (
        400,
        "ClusterSnapshotQuotaExceeded",
        "The request would result in the user exceeding the allowed number of cluster snapshots.",
    ),
    "unauthorized": (
        400,
        "UnauthorizedOperation",
        "Your account is not authorized to perform the requested operation.",
    ),
}
_BUSY_FAULTS: dict[str, tuple[int, str, str]] = {
    "CreateClusterSnapshot": (
        400,
        "InvalidClusterState",
        "The cluster is in state modifying; a snapshot can only be taken of an available cluster.",
    ),
    "CopyClusterSnapshot": (
        400,
        "InvalidClusterSnapshotState",
        "The source snapshot is not in the available state.",
    ),
}


@dataclass(frozen=True)
class FaultPlan:
    """Which Redshift requests fail, and how (see the module docstring)."""

    seed: int = 0
    rate: float = 0.0
    kinds: tuple[str, ...] = ("throttling", "internal", "unavailable", "reset")
    operations: frozenset[str] = frozenset()
    snapshots: frozenset[str] = frozenset()
    max_consecutive: int = 0
    max_timeouts: int = 2
    stall_seconds: float = 1.5
    latency_seconds: float = 0.0
    accounts: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    refuse_assume_role: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}: use {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if min(self.max_consecutive, self.max_timeouts, self.stall_seconds) < 0:
            raise ValueError("max_consecutive, max_timeouts and stall_seconds must be >= 0")
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must be >= 0")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        allowed = set(cls.__dataclass_fields__)
        extra = set(data) - allowed
        if extra:
            raise ValueError(f"unknown fault plan keys {sorted(extra)}: use {sorted(allowed)}")
        return cls(
            seed=int(data.get("seed", 0)),
            rate=float(data.get("rate", 0.0)),
            kinds=tuple(data.get("kinds", cls.kinds)),
            operations=frozenset(data.get("operations", ())),
            snapshots=frozenset(data.get("snapshots", ())),
            max_consecutive=int(data.get("max_consecutive", 0)),
            max_timeouts=int(data.get("max_timeouts", 2)),
            stall_seconds=float(data.get("stall_seconds", 1.5)),
            latency_seconds=float(data.get("latency_seconds", 0.0)),
            accounts=frozenset(str(a) for a in data.get("accounts", ())),
            regions=frozenset(str(r) for r in data.get("regions", ())),
            refuse_assume_role=frozenset(str(r) for r in data.get("refuse_assume_role", ())),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rate": self.rate,
            "kinds": list(self.kinds),
            "operations": sorted(self.operations),
            "snapshots": sorted(self.snapshots),
            "max_consecutive": self.max_consecutive,
            "max_timeouts": self.max_timeouts,
            "stall_seconds": self.stall_seconds,
            "latency_seconds": self.latency_seconds,
            "accounts": sorted(self.accounts),
            "regions": sorted(self.regions),
            "refuse_assume_role": sorted(self.refuse_assume_role),
        }


class _Faults:
    """The active plan, its random stream and what it did (guarded by ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.plan: FaultPlan | None = None
        self.rng = random.Random(0)
        self.injected: Counter[str] = Counter()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.by_pair: Counter[tuple[str, str, str, str]] = Counter()
        self.streak: Counter[tuple[str, str, str, str]] = Counter()
        self.refused: Counter[str] = Counter()
        self.timeouts = 0


_FAULTS = _Faults()


def set_fault_plan(plan: FaultPlan | None) -> None:
    """Arm *plan* (None: no faults), restarting its random stream; counts are kept."""
    with _FAULTS.lock:
        _FAULTS.plan = plan
        _FAULTS.rng = random.Random(plan.seed if plan else 0)
        _FAULTS.streak.clear()
        _FAULTS.timeouts = 0


def clear_faults() -> None:
    """No plan, and every fault and request count zeroed."""
    with _FAULTS.lock:
        _FAULTS.plan = None
        _FAULTS.injected.clear()
        _FAULTS.requests.clear()
        _FAULTS.by_pair.clear()
        _FAULTS.refused.clear()
        _FAULTS.streak.clear()
        _FAULTS.timeouts = 0


def fault_report(reset: bool = False) -> dict[str, Any]:
    """The plan, faults injected by kind, and Redshift requests by (operation, target).

    ``requests`` is a list of ``[operation, target, count]``, the target naming the snapshot
    (and grantee, or listing page) so that one entry is one action's call, summed over every
    account and region; ``requests_by_pair`` the same as ``[account, region, operation,
    target, count]`` (the account the request's credentials map to, the region it was signed
    for), so that a fleet's test proves "no copy or share attempted twice" per pair;
    ``refused_assume_role`` the AssumeRole calls refused, by role ARN. With *reset* the fault
    and request counts restart from zero (per-run figures); the plan stays armed.
    """
    with _FAULTS.lock:
        report = {
            "plan": _FAULTS.plan.to_json() if _FAULTS.plan else None,
            "injected": dict(sorted(_FAULTS.injected.items())),
            "requests": [[op, target, n] for (op, target), n in sorted(_FAULTS.requests.items())],
            "requests_by_pair": [[*key, n] for key, n in sorted(_FAULTS.by_pair.items())],
            "refused_assume_role": dict(sorted(_FAULTS.refused.items())),
        }
        if reset:
            _FAULTS.requests.clear()
            _FAULTS.by_pair.clear()
            _FAULTS.refused.clear()
            _FAULTS.injected.clear()
        return report


def requests_by_pair(
    account: str | None = None, region: str | None = None, operation: str | None = None
) -> dict[tuple[str, str, str, str], int]:
    """Redshift requests seen by the middleware, by (account, region, operation, target),
    optionally only those of one account, region or operation."""
    with _FAULTS.lock:
        return {
            key: n
            for key, n in sorted(_FAULTS.by_pair.items())
            if (account is None or key[0] == account)
            and (region is None or key[1] == region)
            and (operation is None or key[2] == operation)
        }


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")


def request_scope(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """(account, region, service) of a SigV4-signed request: the account moto maps the
    access key to (as moto does: ``MOTO_ACCOUNT_ID``, then the ``x-moto-account-id`` header,
    then the key: an assumed role's keys map to the role's account), the region and service
    of the credential scope. None for an unsigned request."""
    m = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if not m:
        return None
    access_key, region, service = m.groups()
    account = os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if not account:
        from moto.iam.models import get_account_id_from

        account = get_account_id_from(access_key)
    return str(account), region, service


def form_params(environ: dict[str, Any]) -> dict[str, str]:
    """The form parameters of a query-API POST; the body is put back for moto to read."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return {}
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def refused_assume_role(environ: dict[str, Any]) -> str | None:
    """The role ARN of an STS AssumeRole the plan refuses (``refuse_assume_role``), else None;
    counted in :func:`fault_report`."""
    plan = _FAULTS.plan
    if plan is None or not plan.refuse_assume_role:
        return None
    if str(environ.get("REQUEST_METHOD", "")).upper() != "POST":
        return None
    scope = request_scope(environ)
    if scope is None or scope[2] != "sts":
        return None
    params = form_params(environ)
    role = params.get("RoleArn", "")
    if params.get("Action") != "AssumeRole" or role not in plan.refuse_assume_role:
        return None
    with _FAULTS.lock:
        _FAULTS.refused[role] += 1
    return role


def refuse_assume_role(
    role_arn: str, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """STS's answer to an AssumeRole the role's trust policy does not allow: 403
    ``AccessDenied``, naming the caller and the role."""
    scope = request_scope(environ)
    caller = f"arn:aws:iam::{scope[0] if scope else '123456789012'}:user/snapworker"
    message = f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    data = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{escape(message)}"
        "</Message></Error><RequestId>00000000-0000-0000-0000-snapworker01</RequestId>"
        "</ErrorResponse>"
    ).encode()
    start_response(
        "403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))]
    )
    return [data]


def redshift_request(environ: dict[str, Any]) -> dict[str, str] | None:
    """The form parameters of a Redshift query-API request (None for anything else), with
    ``_account`` and ``_region`` (:func:`request_scope`); the body is put back for moto."""
    if str(environ.get("REQUEST_METHOD", "")).upper() != "POST":
        return None
    scope = request_scope(environ)
    if scope is None or scope[2] != "redshift":
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    params = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if not params.get("Action"):
        return None
    params["_account"], params["_region"] = scope[0], scope[1]
    return params


def _target(params: dict[str, str]) -> tuple[str, str]:
    """(snapshot id, request key) of a request: one key per action's call."""
    return request_target(params)


def choose_fault(op: str, params: dict[str, str]) -> tuple[str, str] | None:
    """(kind, request key) of the fault to inject for this request, if any; logs the request."""
    snapshot, key = _target(params)
    account, region = params.get("_account", ""), params.get("_region", "")
    streak = (account, region, op, key)
    with _FAULTS.lock:
        _FAULTS.requests[(op, key)] += 1
        _FAULTS.by_pair[streak] += 1
        plan = _FAULTS.plan
        if plan is None:
            return None
        if plan.operations and op not in plan.operations:
            return None
        if plan.snapshots and snapshot not in plan.snapshots:
            return None
        if plan.accounts and account not in plan.accounts:
            return None
        if plan.regions and region not in plan.regions:
            return None
        slow = ("latency", key) if plan.latency_seconds > 0 else None
        if plan.rate <= 0:
            return slow
        draw = _FAULTS.rng.random()
        kinds = [k for k in plan.kinds if k != "busy" or op in _BUSY_FAULTS]
        if _FAULTS.timeouts >= plan.max_timeouts:
            kinds = [k for k in kinds if k != "timeout"]
        capped = plan.max_consecutive and _FAULTS.streak[streak] >= plan.max_consecutive
        if not kinds or capped or draw >= plan.rate:
            _FAULTS.streak[streak] = 0
            return slow
        kind = kinds[_FAULTS.rng.randrange(len(kinds))]
        _FAULTS.streak[streak] += 1
        _FAULTS.injected[kind] += 1
        if kind == "timeout":
            _FAULTS.timeouts += 1
        return kind, key


def _error_body(code: str, message: str, sender: bool) -> bytes:
    return (
        '<ErrorResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">'
        f"<Error><Type>{'Sender' if sender else 'Receiver'}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        "<RequestId>00000000-0000-0000-0000-snapworker00</RequestId></ErrorResponse>"
    ).encode()


_HTTP_REASONS = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error"}


def inject(
    kind: str,
    op: str,
    key: str,
    app: WSGIApp,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    account: str = "123456789012",
) -> Iterable[bytes]:
    """Answer a request with fault *kind* instead of (or, for ``timeout``, after) *app*."""
    if kind == "reset":
        sock = environ.get("werkzeug.socket")
        if sock is not None:  # linger 0, so the final close sends a TCP RST
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # werkzeug treats a ConnectionError from the app as a dropped connection: it writes
        # nothing more and closes the socket.
        raise ConnectionResetError(f"snapworker fault injection: reset {op}")
    if kind in ("timeout", "latency"):
        # Processed now; the answer comes late (too late for a client with a shorter read
        # timeout, for a timeout; as late as the plan says, for a slow server).
        started: list[Any] = []
        body = b"".join(app(environ, lambda *args: started.append(args)))
        plan = _FAULTS.plan
        if kind == "latency":
            threading.Event().wait(plan.latency_seconds if plan else 0.0)
        else:
            threading.Event().wait(plan.stall_seconds if plan else 1.5)
        start_response(*started[0])
        return [body]
    status, code, message = _BUSY_FAULTS[op] if kind == "busy" else _ERROR_FAULTS[kind]
    data = _error_body(code, message.format(op=op, target=key, account=account), status < 500)
    reason = _HTTP_REASONS.get(status, "Service Unavailable")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))],
    )
    return [data]
