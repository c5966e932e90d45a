"""Restore drills, the I/O part: restore, wait, GetClusterCredentials, connect, check, delete.

The planner decides which drill is due (``snapworker.core.verify``); the executor runs a
``verify`` action through :func:`run_drill`:

1. the drill is recorded in the state DB (``pending``, with the scratch cluster's id)
   *before* RestoreFromClusterSnapshot, so a crash at any later point leaves a record the
   next run acts on;
2. RestoreFromClusterSnapshot into the deterministic scratch cluster, then CreateTags on it
   (the restore API takes no tags): ``snapworker:scratch=true`` and the policy, cluster,
   fire time and snapshot, which prove it is the worker's (``core.verify.scratch_owner``);
3. DescribeClusters every ``poll_seconds`` until ``available``, at most ``wait_minutes``
   (counted in polls, so an injected sleep makes tests instant);
4. GetClusterCredentials (DbUser, DbName, DurationSeconds, DbGroups, AutoCreate), then a
   PostgreSQL-protocol connection (psycopg 3, keyword arguments, never a DSN holding the
   password) to the restored endpoint or ``connect.host``/``port``, with ``sslmode``;
5. each check runs in a read-only transaction; its first value is judged against its
   expectation; the outcome (each check's result, never a credential) goes to the state DB;
6. the scratch cluster is deleted with ``SkipFinalClusterSnapshot`` in a ``finally``: on
   success, failure and error alike. A kill (SIGKILL) skips that ``finally``: the next run's
   :func:`cleanup_scratch` deletes what the state DB or the proving tags name.

A drill that errors (restore, credentials, connection, timeout) ends ``error`` and, like a
``failed`` one, makes the action fail (logged as an error, exit code 1), and counts for its
fire time. One cut short by a crash stays ``pending``: the planner plans it again.

Secrets: the temporary password lives in a :class:`TemporaryCredentials` (its repr hides it)
and is handed to the driver only. Error messages from botocore and psycopg are wrapped in
:class:`DrillError` with the password scrubbed out (``_scrub``) and the original exception
dropped (``from None``), so it reaches no log, no state DB row and no report.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from snapworker.adapters.aws.redshift import STOPPING, AwsError, ClusterInfo, TemporaryCredentials
from snapworker.core import verify
from snapworker.core.model import TAG_POLICY, Action, Inventory, State
from snapworker.errors import SnapworkerError
from snapworker.service.executor import Refused

if TYPE_CHECKING:
    from snapworker.adapters.aws.redshift import RedshiftGateway
    from snapworker.adapters.store.repository import StateStore
    from snapworker.config import Policy, VerifyConnect, VerifySpec
    from snapworker.service.executor import Executor

__all__ = [
    "ConnectParams",
    "DrillError",
    "VerificationFailed",
    "cleanup_scratch",
    "connect_params",
    "conninfo",
    "record_figures_before_snapshot",
    "run_drill",
    "run_queries",
]

CONNECT_TIMEOUT_SECONDS = 30


class DrillError(SnapworkerError):
    """A drill could not run to its checks (restore, wait, credentials, connection). The
    message is safe to log and store: it never holds the password."""


class VerificationFailed(Refused):
    """The drill ended ``failed`` or ``error``: the ``verify`` action fails (exit code 1)."""


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


def _scrub(message: str, *secrets: str | None) -> str:
    """``message`` without any of ``secrets`` (and shortened): for exception texts that
    came from a driver or an SDK and might quote what they were given."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    message = " ".join(message.split())
    return message if len(message) <= 500 else message[:497] + "..."


# ------------------------------------------------------------------------ credentials path


def connect_params(
    gateway: RedshiftGateway,
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
            f"{params.user}: {_scrub(str(e), params.password)}"
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
                reason = _scrub(str(e), params.password) or type(e).__name__
                out[name] = (None, f"query failed: {reason}")
                if conn.broken:
                    raise DrillError(
                        f"connection to {params.host}:{params.port} lost: {reason}"
                    ) from None
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()
    return out


# ---------------------------------------------------------------------------------- drills


def _wait_available(
    gateway: RedshiftGateway,
    cluster_id: str,
    spec: VerifySpec,
    sleep: Callable[[float], None],
) -> ClusterInfo:
    """Poll DescribeClusters until the cluster is ``available``; bounded by ``wait_minutes``
    (as a number of polls, so that an injected sleep does not stretch or shrink it)."""
    polls = max(1, math.ceil(spec.wait_minutes * 60 / spec.poll_seconds))
    status = "unknown"
    for attempt in range(polls + 1):
        info = gateway.describe_cluster(cluster_id)
        if info is None:
            raise DrillError(f"scratch cluster {cluster_id} disappeared during the restore")
        status = info.status
        if status == "available":
            return info
        if status in ("incompatible-restore", "incompatible-network", "failed", "deleting"):
            raise DrillError(f"restore into {cluster_id} failed: cluster is '{status}'")
        if attempt < polls:
            sleep(spec.poll_seconds)
    raise DrillError(
        f"restore into {cluster_id} not available within {spec.wait_minutes} min (still '{status}')"
    )


@dataclass
class _Drill:
    gateway: RedshiftGateway
    store: StateStore
    spec: VerifySpec
    action: Action
    scratch: str
    sleep: Callable[[float], None]
    connector: Connector

    def run(self) -> tuple[str, dict[str, Any]]:
        a = self.action
        assert a.fire_time is not None
        self.gateway.restore_cluster(self.scratch, a.snapshot, a.cluster)
        self.gateway.tag_cluster(
            self.scratch, verify.scratch_tags(a.policy, a.cluster, a.fire_time, a.snapshot)
        )
        info = _wait_available(self.gateway, self.scratch, self.spec, self.sleep)
        params = connect_params(self.gateway, self.scratch, self.spec.connect, info)
        figures = self.store.figures_for(a.snapshot)
        rows = self.connector(params, [(c.name, c.sql) for c in self.spec.checks])
        results = []
        for check in self.spec.checks:
            got, why = rows.get(check.name, (None, "not run"))
            if got is None:
                expected = verify.evaluate_check(
                    check.name, check.expect.kind, _target(check), [], figures
                ).expected
                results.append(verify.CheckResult(check.name, False, expected, None, why or ""))
                continue
            results.append(
                verify.evaluate_check(check.name, check.expect.kind, _target(check), got, figures)
            )
        ok = all(r.ok for r in results)
        detail: dict[str, Any] = {
            "snapshot": a.snapshot,
            "endpoint": f"{params.host}:{params.port}/{params.dbname}",
            "db_user": params.user,
            "checks": [r.as_dict() for r in results],
        }
        return ("passed" if ok else "failed"), detail


def _target(check: Any) -> Any:
    kind = check.expect.kind
    if kind == "min":
        return check.expect.min
    if kind == "equals":
        return check.expect.equals
    return None


def run_drill(
    executor: Executor,
    action: Action,
    *,
    connector: Connector | None = None,
    log: Any = None,
) -> str:
    """Carry out a ``verify`` action; returns ``passed`` or raises :class:`VerificationFailed`
    (``failed``/``error``). The scratch cluster is deleted whatever happens (``finally``)."""
    policy = executor.policies[action.policy]
    spec = policy.verify
    if spec is None or action.fire_time is None:
        raise Refused(f"verify {action.snapshot}: policy {action.policy} has no verify block")
    if log is None:
        from snapworker.logs import get_logger

        log = get_logger()
    store, gateway, clock = executor.store, executor.gateway, executor.clock
    scratch = verify.scratch_cluster_id(action.policy, action.cluster, action.fire_time)
    vid = store.start_verification(
        action.policy, action.cluster, action.snapshot, action.fire_time, scratch, clock()
    )
    drill = _Drill(gateway, store, spec, action, scratch, gateway.sleep, connector or run_queries)
    ended: tuple[str, dict[str, Any]] | None = None
    try:
        try:
            ended = drill.run()
        except AwsError as e:
            if e.code == STOPPING:
                # The worker is stopping, the drill proved nothing: it stays `pending`, so
                # the next tick or run redoes it for this fire time (not an error for it).
                raise
            ended = ("error", {"snapshot": action.snapshot, "error": _scrub(str(e))})
        except DrillError as e:
            ended = ("error", {"snapshot": action.snapshot, "error": str(e)})
    finally:
        # Always, even when something unexpected is propagating (the drill then stays
        # `pending` and is redone); only a SIGKILL skips this, and cleanup_scratch follows.
        gone = _delete_scratch(gateway, store, scratch, clock, log)
        if ended is not None:
            ended[1]["scratch_deleted"] = gone
            store.finish_verification(vid, ended[0], ended[1], clock())
    status, detail = ended
    if status == "passed":
        log.info(
            "verification passed",
            policy=action.policy,
            cluster=action.cluster,
            snapshot=action.snapshot,
            checks=len(spec.checks),
        )
        return "passed"
    message = _failure_message(status, detail)
    log.error(
        "verification failed",
        policy=action.policy,
        cluster=action.cluster,
        snapshot=action.snapshot,
        status=status,
        reason=message,
    )
    raise VerificationFailed(f"verify {action.snapshot}: {message}")


def _failure_message(status: str, detail: Mapping[str, Any]) -> str:
    if status == "error":
        return f"drill error: {detail.get('error', 'unknown')}"
    failed = [c for c in detail.get("checks", []) if not c.get("ok")]
    parts = [
        f"check {c['name']}: expected {c['expected']}, got {c['observed']!r}"
        + (f" ({c['detail']})" if c.get("detail") else "")
        for c in failed
    ]
    return "verification failed: " + "; ".join(parts)


def _delete_scratch(
    gateway: RedshiftGateway,
    store: StateStore,
    scratch: str,
    clock: Callable[[], datetime],
    log: Any,
) -> bool:
    """Delete the scratch cluster (SkipFinalClusterSnapshot); True once it is known gone.
    A failure is logged and left for the next run's :func:`cleanup_scratch`."""
    try:
        gateway.delete_cluster(scratch)
    except AwsError as e:
        log.warning(
            "scratch cluster not deleted; the next run retries",
            cluster=scratch,
            error=_scrub(str(e)),
        )
        return False
    store.mark_scratch_deleted(scratch, clock())
    return True


def cleanup_scratch(
    gateway: RedshiftGateway,
    store: StateStore,
    inventory: Inventory,
    state: State,
    policies: Iterable[str],
    clock: Callable[[], datetime],
    log: Any,
) -> int:
    """Delete scratch clusters left by drills a crash cut short, for ``policies`` (the ones
    this tick holds): those the state DB records as not yet deleted, and those whose tags
    prove they are a drill's (``core.verify.scratch_owner``: the state DB may be lost).
    Nothing else is ever deleted. Returns how many clusters were deleted."""
    ours = set(policies)
    recorded = {
        v.scratch_cluster: v.policy
        for v in state.verifications
        if not v.scratch_deleted and v.policy in ours
    }
    deleted = 0
    for cid, cluster in sorted(inventory.clusters.items()):
        owner = recorded.get(cid) or verify.scratch_owner(cluster)
        if owner is None or owner not in ours:
            continue
        if cluster.status == "deleting":
            continue
        if cid in recorded and TAG_POLICY in cluster.tags and cluster.tags[TAG_POLICY] != owner:
            continue  # recorded for one policy, tagged for another: touch nothing
        if _delete_scratch(gateway, store, cid, clock, log):
            log.warning("deleted a leftover scratch cluster", cluster=cid, policy=owner)
            deleted += 1
    for cid in sorted(set(recorded) - set(inventory.clusters)):
        store.mark_scratch_deleted(cid, clock())  # never made (crash before the restore) or gone
    return deleted


# ------------------------------------------------------------- figures before a snapshot


def record_figures_before_snapshot(
    executor: Executor,
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
        from snapworker.logs import get_logger

        log = get_logger()
    queries = [(f.name, f.sql) for f in spec.record_before_snapshot]
    try:
        params = connect_params(executor.gateway, action.cluster, spec.connect)
        rows = (connector or run_queries)(params, queries)
    except (AwsError, DrillError) as e:
        log.warning(
            "snapshot figures not recorded",
            policy=action.policy,
            cluster=action.cluster,
            snapshot=action.snapshot,
            error=_scrub(str(e)),
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
    executor.store.record_figures(
        action.snapshot, action.policy, action.cluster, figures, executor.clock()
    )
    return True
