"""Restore drills, the I/O part: restore, wait, GetClusterCredentials, connect, check, delete.

The planner decides which drill is due (``snapworker.core.verify``) and plans it as a
``verify`` action. A drill is a long workflow, not one AWS call, so the executor does not run
it: once the executor is done, the tick hands the ``verify`` actions to :func:`run_drills`,
which journals each like an action and runs it through :func:`run_drill`:

1. the drill is recorded in the state DB (``pending``, with the scratch cluster's id)
   *before* RestoreFromClusterSnapshot, so a crash at any later point leaves a record the
   next run acts on;
2. RestoreFromClusterSnapshot into the deterministic scratch cluster, then CreateTags on it
   (the restore API takes no tags): ``snapworker:scratch=true`` and the policy, cluster,
   fire time and snapshot, which prove it is the worker's (``core.verify.scratch_owner``);
3. DescribeClusters every ``poll_seconds`` until ``available``, at most ``wait_minutes``
   (counted in polls, so an injected sleep makes tests instant);
4. GetClusterCredentials (DbUser, DbName, DurationSeconds, DbGroups, AutoCreate), then a
   PostgreSQL-protocol connection (``snapworker.service.database``) to the restored endpoint
   or ``connect.host``/``port``, with ``sslmode``;
5. each check runs in a read-only transaction; its first value is judged against its
   expectation; the outcome (each check's result, never a credential) goes to the state DB;
6. the scratch cluster is deleted with ``SkipFinalClusterSnapshot`` in a ``finally``: on
   success, failure and error alike. A kill (SIGKILL) skips that ``finally``: the next run's
   :func:`cleanup_scratch` deletes what the state DB or the proving tags name.

A drill that errors (restore, credentials, connection, timeout) ends ``error`` and, like a
``failed`` one, makes the action fail (logged as an error, exit code 1), and counts for its
fire time. One cut short by a crash stays ``pending``: the planner plans it again.
Secrets never reach a log or the state DB (see ``snapworker.service.database``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from snapworker.adapters.aws.redshift import STOPPING, AwsError, ClusterInfo
from snapworker.core import verify
from snapworker.core.model import TAG_POLICY, Action, Inventory, State
from snapworker.logs import get_logger
from snapworker.service.database import (
    Connector,
    ConnectParams,
    DrillError,
    connect_params,
    conninfo,
    run_queries,
    scrub,
)
from snapworker.service.executor import Outcome, Refused
from snapworker.service.iam import needs
from snapworker.service.ports import Gateway, JournalRepository, VerificationRepository

if TYPE_CHECKING:
    from snapworker.config import Policy, VerifySpec

__all__ = [
    "ConnectParams",
    "DrillContext",
    "DrillError",
    "VerificationFailed",
    "cleanup_scratch",
    "connect_params",
    "conninfo",
    "run_drill",
    "run_drills",
    "run_queries",
]


class VerificationFailed(Refused):
    """The drill ended ``failed`` or ``error``: the ``verify`` action fails (exit code 1)."""


class DrillStore(VerificationRepository, JournalRepository, Protocol):
    """What drills need of the state DB: the drill records and the journal."""


@dataclass
class DrillContext:
    """What a drill works with: the gateway, the state DB, the run, the policies, the clock."""

    gateway: Gateway
    store: DrillStore
    run_id: int
    policies: Mapping[str, Policy]
    clock: Callable[[], datetime]


# ---------------------------------------------------------------------------------- drills


def _wait_available(
    gateway: Gateway,
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
    gateway: Gateway
    store: DrillStore
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


def run_drills(
    actions: Sequence[Action],
    ctx: DrillContext,
    progress: Callable[[Outcome], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    *,
    connector: Connector | None = None,
    log: Any = None,
) -> list[Outcome]:
    """Run the ``verify`` actions one after the other, each journalled like an action of the
    executor (entry before, outcome after); ``should_stop`` is asked before each."""
    outcomes: list[Outcome] = []
    for action in actions:
        if should_stop():
            break
        entry = ctx.store.journal_start(ctx.run_id, action, ctx.clock())
        try:
            status = run_drill(ctx, action, connector=connector, log=log)
        except (AwsError, Refused) as e:
            ctx.store.journal_finish(entry, "failed", None, str(e), ctx.clock())
            outcome = Outcome(action, False, "failed", str(e))
        else:
            ctx.store.journal_finish(entry, "completed", status, None, ctx.clock())
            outcome = Outcome(action, True, status)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return outcomes


@needs(
    "verify",
    "redshift:RestoreFromClusterSnapshot",
    "redshift:CreateTags",
    "redshift:DescribeClusters",
    "redshift:GetClusterCredentials",
    "redshift:CreateClusterUser",
    "redshift:JoinGroup",
    "redshift:DeleteCluster",
)
def run_drill(
    ctx: DrillContext,
    action: Action,
    *,
    connector: Connector | None = None,
    log: Any = None,
) -> str:
    """Restore the newest owned snapshot into a scratch cluster (swv-*), connect with
    temporary credentials, run the checks, delete the scratch cluster.

    Returns ``passed`` or raises :class:`VerificationFailed` (``failed``/``error``). The
    scratch cluster is deleted whatever happens (``finally``)."""
    policy = ctx.policies[action.policy]
    spec = policy.verify
    if spec is None or action.fire_time is None:
        raise Refused(f"verify {action.snapshot}: policy {action.policy} has no verify block")
    if log is None:
        log = get_logger()
    store, gateway, clock = ctx.store, ctx.gateway, ctx.clock
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
            ended = ("error", {"snapshot": action.snapshot, "error": scrub(str(e))})
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
    gateway: Gateway,
    store: VerificationRepository,
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
            error=scrub(str(e)),
        )
        return False
    store.mark_scratch_deleted(scratch, clock())
    return True


def cleanup_scratch(
    gateway: Gateway,
    store: VerificationRepository,
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
