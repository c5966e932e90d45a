"""Reaching a cluster's database: temporary credentials, a read-only connection, and the
figures recorded on a live cluster right before its snapshot.

One credentials path (:func:`connect_params`: GetClusterCredentials, then the endpoint or
``verify.connect.host``/``port``) serves the restore drills (``snapworker.service.drills``),
the figures before a snapshot (:func:`record_figures_before_snapshot`, called by the
executor's ``create`` handler) and ``snapworker credentials``.

Secrets: the temporary password lives in a ``TemporaryCredentials`` (its repr hides it) and is
handed to the driver only. Error messages from botocore and psycopg are wrapped in
:class:`DrillError` with the password scrubbed out (``scrub``) and the original exception
dropped (``from None``), so it reaches no log, no state DB row and no report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from snapworker.adapters.aws.redshift import AwsError, ClusterInfo, TemporaryCredentials
from snapworker.core import verify
from snapworker.core.model import Action
from snapworker.errors import SnapworkerError
from snapworker.logs import get_logger
from snapworker.service.iam import needs
from snapworker.service.ports import Gateway, VerificationRepository

if TYPE_CHECKING:
    from snapworker.config import Policy, VerifyConnect

__all__ = [
    "ConnectParams",
    "Connector",
    "DrillError",
    "QueryOutcome",
    "connect_params",
    "conninfo",
    "record_figures_before_snapshot",
    "run_queries",
    "scrub",
]

CONNECT_TIMEOUT_SECONDS = 30


class DrillError(SnapworkerError):
    """A drill could not run to its checks (restore, wait, credentials, connection). The
    message is safe to log and store: it never holds the password."""


@dataclass(frozen=True)
class ConnectParams:
    """What libpq needs. ``password`` is hidden from repr; pass it to the driver only."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)
    sslmode: str = "require"

    def __str__(self) -> str:
        return conninfo(self, with_password=False)


def _quote(value: str) -> str:
    """A libpq keyword/value: quoted when it holds spaces, quotes or backslashes."""
    if value and all(c.isalnum() or c in "-_.:@+/" for c in value):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def conninfo(params: ConnectParams, *, with_password: bool) -> str:
    """A ready libpq connection string (``psql "<this>"``); the password only on request."""
    parts = [
        f"host={_quote(params.host)}",
        f"port={params.port}",
        f"dbname={_quote(params.dbname)}",
        f"user={_quote(params.user)}",
        f"sslmode={params.sslmode}",
    ]
    if with_password:
        parts.append(f"password={_quote(params.password)}")
    return " ".join(parts)


def scrub(message: str, *secrets: str | None) -> str:
    """``message`` without any of ``secrets`` (and shortened): for exception texts that
    came from a driver or an SDK and might quote what they were given."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    message = " ".join(message.split())
    return message if len(message) <= 500 else message[:497] + "..."


# ------------------------------------------------------------------------ credentials path


def connect_params(
    gateway: Gateway,
    cluster_id: str,
    connect: VerifyConnect,
    info: ClusterInfo | None = None,
) -> ConnectParams:
    """GetClusterCredentials for ``cluster_id`` as ``connect`` says, and where to connect:
    ``connect.host``/``port`` if set, else the cluster's endpoint. The one code path of the
    drills, the pre-snapshot figures and ``snapworker credentials``."""
    if info is None and (connect.host is None or connect.port is None):
        info = gateway.describe_cluster(cluster_id)
        if info is None:
            raise DrillError(f"cluster {cluster_id} does not exist")
    host = connect.host or (info.address if info is not None else None)
    port = connect.port or (info.port if info is not None else None)
    if not host or not port:
        raise DrillError(f"cluster {cluster_id} reports no endpoint yet")
    try:
        creds: TemporaryCredentials = gateway.get_cluster_credentials(
            cluster_id,
            connect.db_user,
            connect.db_name,
            connect.duration_seconds,
            list(connect.db_groups),
            connect.auto_create,
        )
    except AwsError as e:
        raise DrillError(
            f"GetClusterCredentials for {cluster_id} failed: {e.code}: {e.message}"
        ) from None
    return ConnectParams(
        host=host,
        port=int(port),
        dbname=connect.db_name,
        user=creds.user,
        password=creds.password,
        sslmode=connect.sslmode,
    )


QueryOutcome = tuple[list[tuple[Any, ...]] | None, str | None]
"""(rows, None) or (None, why the query failed)."""

Connector = Callable[[ConnectParams, Sequence[tuple[str, str]]], dict[str, QueryOutcome]]


def run_queries(
    params: ConnectParams, queries: Sequence[tuple[str, str]]
) -> dict[str, QueryOutcome]:
    """Connect once and run each ``(name, sql)`` in its own read-only transaction; returns
    each query's first row (or why it failed). A failed connection raises
    :class:`DrillError` (password scrubbed, the driver's exception dropped)."""
    import psycopg  # lazy: only drills need the driver

    try:
        conn = psycopg.connect(
            host=params.host,
            port=params.port,
            dbname=params.dbname,
            user=params.user,
            password=params.password,
            sslmode=params.sslmode,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="snapworker-verify",
        )
    except psycopg.Error as e:
        raise DrillError(
            f"cannot connect to {params.host}:{params.port}/{params.dbname} as "
            f"{params.user}: {scrub(str(e), params.password)}"
        ) from None
    out: dict[str, QueryOutcome] = {}
    try:
        conn.read_only = True
        for name, sql in queries:
            try:
                with conn.transaction():
                    cur = conn.execute(sql)  # the operator's own SQL, read-only
                    row = cur.fetchone() if cur.description is not None else None
                out[name] = ([tuple(row)] if row is not None else [], None)
            except psycopg.Error as e:
                reason = scrub(str(e), params.password) or type(e).__name__
                out[name] = (None, f"query failed: {reason}")
                if conn.broken:
                    raise DrillError(
                        f"connection to {params.host}:{params.port} lost: {reason}"
                    ) from None
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()
    return out


# ------------------------------------------------------------- figures before a snapshot


@needs(
    "figures",
    "redshift:DescribeClusters",
    "redshift:GetClusterCredentials",
    "redshift:CreateClusterUser",
    "redshift:JoinGroup",
)
def record_figures_before_snapshot(
    gateway: Gateway,
    store: VerificationRepository,
    clock: Callable[[], datetime],
    policy: Policy,
    action: Action,
    *,
    connector: Connector | None = None,
    log: Any = None,
) -> bool:
    """Read ``verify.record_before_snapshot`` on the live cluster (same credentials path as
    the drills) and store the figures with the snapshot about to be created. A failure is
    logged as a warning and the snapshot is taken anyway: a backup matters more than its
    figures (the drill then reports the missing figure). Returns whether figures were kept."""
    spec = policy.verify
    if spec is None or not spec.record_before_snapshot:
        return False
    if log is None:
        log = get_logger()
    queries = [(f.name, f.sql) for f in spec.record_before_snapshot]
    try:
        params = connect_params(gateway, action.cluster, spec.connect)
        rows = (connector or run_queries)(params, queries)
    except (AwsError, DrillError) as e:
        log.warning(
            "snapshot figures not recorded",
            policy=action.policy,
            cluster=action.cluster,
            snapshot=action.snapshot,
            error=scrub(str(e)),
        )
        return False
    figures: dict[str, Any] = {}
    for name, _sql in queries:
        got, why = rows.get(name, (None, "not run"))
        if got:
            figures[name] = verify.json_value(got[0][0] if got[0] else None)
        else:
            log.warning(
                "snapshot figure not read",
                policy=action.policy,
                snapshot=action.snapshot,
                figure=name,
                error=why or "no rows",
            )
    store.record_figures(action.snapshot, action.policy, action.cluster, figures, clock())
    return True
