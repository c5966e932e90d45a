"""One tick: observe -> plan -> apply -> drills. ``run`` is one tick, ``plan`` one tick that
applies and records nothing, and the daemon is a loop of them.

The tick is the only place where the adapters (gateway, store, clock) meet the pure core. It
works through the ports (``snapworker.service.ports``), never the concrete adapters. The
executor carries out the plan's actions; the restore drills it plans (``verify``) run after
them, one by one (``snapworker.service.drills``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from snapworker.core import planner
from snapworker.core.model import Action, Inventory, OwnedRecord, Plan, State
from snapworker.core.targets import Pair
from snapworker.errors import UsageError
from snapworker.service.drills import DrillContext, cleanup_scratch, run_drills
from snapworker.service.executor import Executor, Outcome, apply, reconcile_pending
from snapworker.service.gone import record_missed
from snapworker.service.iam import needs
from snapworker.service.leases import PolicyLeases, run_lease
from snapworker.service.ports import Gateway, ListingProgress, StateRepository

if TYPE_CHECKING:
    from snapworker.adapters.store.repository import Gone
    from snapworker.config import Config, Policy


S = TypeVar("S", bound=StateRepository, covariant=True)


@dataclass(frozen=True)
class Runtime(Generic[S]):
    """The wired adapters (see ``snapworker.service.bootstrap``). Generic in the store, so
    that what wires them (the CLI, the daemon) keeps the concrete store's other methods,
    while the tick sees only the port, ``Runtime[StateRepository]``."""

    config: Config
    gateway: Gateway
    store: S
    clock: Callable[[], datetime]
    log: Any


@dataclass
class TickResult:
    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)
    run_id: int | None = None
    reconciled: int = 0
    adopted: int = 0
    inventory: Inventory | None = None
    skipped: list[str] = field(default_factory=list)
    """Policies not worked on: another process holds their lease (see snapworker.service.leases)."""
    interrupted: bool = False
    """A stop was asked for (a signal, a lost lease) before the tick's work ended: the actions
    not started are left to the next tick or run (``outcomes`` has those that ran)."""
    gone: Gone | None = None
    """What this tick first recorded as changed outside snapworker (``service.gone``)."""

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def exit_code(self) -> int:
        """1 if an action failed, a policy was skipped (its work was not done by us), or the
        tick was interrupted (`run` exits 130/143 instead when a signal stopped it)."""
        return 1 if self.failures or self.skipped or self.interrupted else 0


class UnknownPolicy(UsageError, ValueError):
    """A policy named on the command line (--policy) that the config does not define."""


def select_policies(config: Config, names: Sequence[str] | None) -> list[Policy]:
    if not names:
        return list(config.policies)
    known = {p.name: p for p in config.policies}
    missing = [n for n in names if n not in known]
    if missing:
        raise UnknownPolicy(
            f"no policy named {', '.join(repr(m) for m in missing)} "
            f"(the config has {', '.join(known)})"
        )
    return [known[n] for n in names]


@needs("observe", "redshift:DescribeClusters", "redshift:DescribeClusterSnapshots")
def observe(rt: Runtime[StateRepository], listing: ListingProgress | None = None) -> Inventory:
    """One account-wide listing of clusters and snapshots per run (and the re-read before a
    delete).

    Paginated; the account id comes from the listing itself (no call of its own).
    ``listing``: told after each page of snapshots (a progress bar, on a terminal)."""
    clusters = rt.gateway.list_clusters()
    snapshots = rt.gateway.list_snapshots(listing)
    return Inventory(clusters=clusters, snapshots=snapshots)


def make_plan(
    rt: Runtime[StateRepository], policies: Sequence[Policy], inv: Inventory, state: State
) -> Plan:
    return planner.plan(
        [p.core for p in policies],
        inv,
        state,
        rt.clock(),
        account=rt.gateway.account_id(),
        all_policy_names=[p.name for p in rt.config.policies],
        renames=renames(rt.config),
    )


def renames(config: Config) -> dict[str, str]:
    """Each former policy name (``formerly``) of the config -> the policy that lists it."""
    return {old: p.name for p in config.policies for old in p.formerly}


def tick(
    rt: Runtime[StateRepository],
    policy_names: Sequence[str] | None = None,
    dry_run: bool = False,
    mode: str = "run",
    progress: Callable[[Outcome], None] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    holder: str | None = None,
    listing: ListingProgress | None = None,
    pair: Pair | None = None,
) -> TickResult:
    """Observe, plan and (unless ``dry_run``) apply, for the named policies (default: all),
    in one (target, region) pair: ``rt``'s gateway and store are the pair's
    (``snapworker.service.fleet`` runs the pairs; ``pair`` None: the one pair of a config
    without targets, ``default``).

    Applying takes the lease of each (policy, pair) first (``holder`` names us; default: a
    new holder id); one leased by another process is skipped (``TickResult.skipped``), and
    the lease is checked again right before each AWS mutation (its fence goes into the
    journal). A dry run takes no lease. ``listing``: told after each page of the snapshot
    listing."""
    policies = select_policies(rt.config, policy_names)
    if dry_run:
        inv = observe(rt, listing)
        plan = make_plan(rt, policies, inv, rt.store.load_state())
        return TickResult(plan, inventory=inv)

    leases = PolicyLeases(
        rt.store,
        holder,
        ttl=timedelta(seconds=rt.config.fleet.lease_seconds),
        log=rt.log,
        pair_key=pair.key if pair is not None else None,
    )
    acquired, skipped = leases.acquire([p.name for p in policies])
    try:
        for name in skipped:
            rt.log.warning("policy skipped: another snapworker holds its lease", policy=name)
        if not acquired:
            return TickResult(Plan(generated_at=rt.clock()), skipped=skipped)
        policies = [p for p in policies if p.name in acquired]
        result = _leased_tick(
            rt,
            policies,
            mode,
            progress,
            on_plan,
            lambda: should_stop() or leases.any_lost,
            leases,
            listing,
        )
        result.skipped = skipped
        return result
    finally:
        leases.release()


def _leased_tick(
    rt: Runtime[StateRepository],
    policies: Sequence[Policy],
    mode: str,
    progress: Callable[[Outcome], None] | None,
    on_plan: Callable[[Plan], None] | None,
    should_stop: Callable[[], bool],
    leases: PolicyLeases,
    listing: ListingProgress | None = None,
) -> TickResult:
    calls_before = rt.gateway.stats.snapshot()
    # Runs whose process is gone (killed) never finished their row: recorded interrupted.
    rt.store.interrupt_gone_runs(rt.clock())
    run_id = rt.store.begin_run(
        mode,
        os.getpid(),
        rt.clock(),
        holder=leases.holder,
        lease_expires=leases.expiry(),
    )
    leases.keep(run_lease(run_id))
    try:
        result = _tick(rt, policies, run_id, progress, on_plan, should_stop, listing, leases.check)
    except BaseException as e:
        rt.store.finish_run(
            run_id,
            "interrupted" if should_stop() else "failed",
            0,
            0,
            _calls_since(rt, calls_before),
            f"{type(e).__name__}: {e}",
            rt.clock(),
        )
        raise
    ok = sum(1 for o in result.outcomes if o.ok)
    failed = len(result.outcomes) - ok
    status = "interrupted" if result.interrupted else "failed" if failed else "ok"
    rt.store.finish_run(
        run_id,
        status,
        ok,
        failed,
        _calls_since(rt, calls_before),
        None,
        rt.clock(),
    )
    return result


def _calls_since(rt: Runtime[StateRepository], before: dict[str, int]) -> dict[str, int]:
    """This tick's API calls (a daemon's gateway counts over many ticks)."""
    now = rt.gateway.stats.snapshot()
    return {op: n - before.get(op, 0) for op, n in now.items() if n - before.get(op, 0)}


def _tick(
    rt: Runtime[StateRepository],
    policies: Sequence[Policy],
    run_id: int,
    progress: Callable[[Outcome], None] | None,
    on_plan: Callable[[Plan], None] | None,
    should_stop: Callable[[], bool],
    listing: ListingProgress | None = None,
    fence: Callable[[str], int] | None = None,
) -> TickResult:
    inv = observe(rt, listing)
    state = rt.store.load_state()
    reconciled = 0
    # Only our leased policies' entries (another process may be mid-action on its own),
    # and orphans of policies no longer in the config (nobody else will complete them).
    configured = {p.name for p in rt.config.policies}
    ours = {p.name for p in policies}
    pending = [e for e in state.pending if e.policy in ours or e.policy not in configured]
    if pending:
        reconciled = reconcile_pending(rt.store, pending, inv, rt.clock())
        if reconciled:
            state = rt.store.load_state()
    owned = planner.owned_snapshots(
        [p.core for p in policies], inv, state, rt.gateway.account_id(), renames(rt.config)
    )
    # What the complete listing no longer shows of what the state DB holds as live.
    gone = record_missed(rt.store, state, inv, ours, configured, owned, rt.clock(), rt.log)
    if gone is not None:
        state = rt.store.load_state()
    adopted = _adopt(rt, policies, owned, state)
    timed = _time_untracked_grants(rt, policies, owned, inv, state)
    if adopted or timed:
        state = rt.store.load_state()
    # Scratch clusters of restore drills a crash cut short: deleted before anything else.
    if cleanup_scratch(
        rt.gateway, rt.store, inv, state, [p.name for p in policies], rt.clock, rt.log
    ):
        state = rt.store.load_state()
    plan = make_plan(rt, policies, inv, state)
    if on_plan is not None:
        on_plan(plan)
    planned = {a.key for a in plan.actions}
    names = {p.name for p in policies}
    for entry in state.pending:
        if entry.policy in names and entry.key not in planned:
            rt.store.supersede(entry.entry_id, rt.clock())
    executor = Executor(
        gateway=rt.gateway,
        store=rt.store,
        run_id=run_id,
        policies={p.name: p for p in rt.config.policies},
        state=state,
        clock=rt.clock,
        account=rt.gateway.account_id(),
        max_concurrency=rt.config.aws.max_concurrency,
        fence=fence,
    )

    def report(o: Outcome) -> None:
        a = o.action
        fields = {
            "policy": a.policy,
            "cluster": a.cluster,
            "action": a.kind,
            "snapshot": a.snapshot,
            "outcome": o.outcome,
        }
        if a.account:
            fields["account"] = a.account
        if o.ok:
            rt.log.info("action", **fields)
        else:
            rt.log.error("action failed", error=o.error, **fields)
        if progress is not None:
            progress(o)

    drills = [a for a in plan.actions if a.kind == "verify"]
    outcomes = apply([a for a in plan.actions if a.kind != "verify"], executor, report, should_stop)
    if drills:
        ctx = DrillContext(rt.gateway, rt.store, run_id, executor.policies, rt.clock)
        outcomes = _in_plan_order(
            plan.actions, outcomes + run_drills(drills, ctx, report, should_stop)
        )
    # The drift this tick saw, for `status`: revoked only if its revoke succeeded.
    # Imported here for start-up: `iam-policy` reads this module's declarations and must not
    # import the state DB's stack.
    from snapworker.adapters.store.repository import drift_items, sizes_items

    revoked = {o.action.key for o in outcomes if o.ok and o.action.kind == "revoke"}
    rt.store.record_drift(run_id, drift_items(plan, revoked), rt.clock())
    rt.store.record_sizes(run_id, sizes_items(plan), rt.clock())  # for `status`
    # Interrupted: the stop came before every planned action had started.
    interrupted = len(outcomes) < len(plan.actions) and should_stop()
    return TickResult(
        plan, outcomes, run_id, reconciled, adopted, inv, interrupted=interrupted, gone=gone
    )


def _in_plan_order(actions: Sequence[Action], outcomes: list[Outcome]) -> list[Outcome]:
    """The outcomes of the executor and of the drills, in the order of the plan."""
    index = {id(a): i for i, a in enumerate(actions)}
    return sorted(outcomes, key=lambda o: index[id(o.action)])


def _adopt(
    rt: Runtime[StateRepository],
    policies: Sequence[Policy],
    owned: Mapping[str, OwnedRecord],
    state: State,
) -> int:
    """Record owned snapshots the state DB does not know (their tags prove ownership: the
    state DB was lost or is new). Adoption writes the state DB only, never AWS."""
    names = {p.name for p in policies}
    count = 0
    for sid, rec in owned.items():
        if sid not in state.owned and rec.policy in names:
            rt.store.record_owned(rec, adopted=True, at=rt.clock())
            rt.log.info("adopted", snapshot=sid, policy=rec.policy, cluster=rec.cluster)
            count += 1
    return count


def _time_untracked_grants(
    rt: Runtime[StateRepository],
    policies: Sequence[Policy],
    owned: Mapping[str, OwnedRecord],
    inv: Inventory,
    state: State,
) -> int:
    """Start the ``unshare_after`` clock of grants the state DB has no open record of.

    An owned snapshot shared with an account its policy lists, with no open grant recorded:
    the state DB was lost (or the grant was made by hand, or re-made after a revoke).
    Recorded as granted now, the grant lapses ``unshare_after`` from today: never sooner
    than the policy says, since it is at least that old by then. Without this it would stay
    until its snapshot expired. Only for policies with ``unshare_after``; writes the state
    DB only. Returns the grants recorded."""
    timed = {p.name: p for p in policies if p.share.unshare_after is not None}
    if not timed:
        return 0
    open_grants = {(g.snapshot_id, g.account) for g in state.grants if g.revoked_at is None}
    count = 0
    for sid, rec in owned.items():
        policy = timed.get(rec.policy)
        snap = inv.snapshots.get(sid)
        if policy is None or snap is None or rec.deleted_at is not None:
            continue
        for account in snap.accounts:
            if account not in policy.share.accounts or (sid, account) in open_grants:
                continue
            if rt.store.record_grant(sid, account, rt.clock()):
                rt.log.info(
                    "grant first seen: unshare_after counts from now",
                    snapshot=sid,
                    account=account,
                    policy=rec.policy,
                )
                count += 1
    return count
