"""`snapworker daemon`: ticks under APScheduler until SIGTERM/SIGINT, for months.

Jobs (APScheduler 3 ``BackgroundScheduler`` in UTC; every job coalesces missed runs into
one, runs one instance at a time, and is still run if it fires up to ``MISFIRE_GRACE``
late):

- ``reconcile``: a tick over every policy every ``daemon.reconcile_interval_seconds``, and
  once at start-up (copy, share, expire, and creates that came due);
- ``create:<policy>``: for a policy with a ``create`` schedule, a tick of that policy at each
  of the schedule's fire times in the policy's time zone (:class:`CronFireTrigger` uses
  ``core.schedule.next_fire``, the same croniter evaluation the planner uses to decide what
  is due, so the two can never disagree on day-of-week numbering or DST);
- ``verify:<policy>``: likewise for a policy with a ``verify`` block, a tick of that policy
  at each fire time of ``verify.schedule``, which plans the restore drill then due;
- ``poll-creating``: after a tick that made a snapshot, or saw one it owns still
  ``creating``, one more reconcile ``daemon.poll_creating_seconds`` (<= 30 s) later, so that
  sharing follows creation promptly;
- ``event-*``: an immediate tick of the policies selecting the cluster an SQS message names
  (see ``snapworker.adapters.aws.sqs``);
- ``prune``: once a day (and at start-up), journal entries and runs older than
  ``daemon.history_days`` are deleted (pending journal entries always stay).

Ticks never overlap in this process (one lock); across processes, each tick takes the
lease of each policy it works on (``snapworker.service.leases``), so a `run` from cron and the
daemon never act on the same policy at once.

Signals: SIGTERM or SIGINT stops it: the tick in progress finishes the action in flight
(journalled), starts no new action, the scheduler shuts down, and the process exits 0. A
retry backoff in progress is cut short: the action is journalled as failed ("snapworker
is stopping") and the next tick or run does it again. So the stop takes at most one AWS
call's own botocore attempts (:func:`stop_bound_seconds`), plus the SQS long poll
(``SQS_WAIT_SECONDS``). SIGHUP reloads the config file: a bad one is logged with every
problem and the running config kept; a good one replaces the runtime and the jobs (the
HTTP endpoint and the SQS queue are read at start-up only).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from snapworker.adapters.aws.sqs import RedshiftEvent, SqsPoller
from snapworker.adapters.http.health import HealthServer, Metrics
from snapworker.core.model import TAG_POLICY
from snapworker.entrypoints.app import html_page
from snapworker.entrypoints.daemon_jobs import (
    BOTOCORE_MAX_BACKOFF,
    CALLS_PER_ACTION,
    JOB_DEFAULTS,
    MISFIRE_GRACE,
    PRUNE_EVERY,
    SQS_WAIT_SECONDS,
    STATE_DB_SLACK,
    CronFireTrigger,
    policies_for_cluster,
    stop_bound_seconds,
)
from snapworker.entrypoints.stopping import SIGNALS, GracefulStop
from snapworker.service.bootstrap import FleetTargets, fleet
from snapworker.service.fleet import FleetResult, SinglePair, fleet_tick
from snapworker.service.leases import new_holder
from snapworker.service.tick import TickResult

__all__ = [
    "BOTOCORE_MAX_BACKOFF",
    "CALLS_PER_ACTION",
    "JOB_DEFAULTS",
    "MISFIRE_GRACE",
    "PRUNE_EVERY",
    "SQS_WAIT_SECONDS",
    "STATE_DB_SLACK",
    "CronFireTrigger",
    "Daemon",
    "policies_for_cluster",
    "stop_bound_seconds",
]

if TYPE_CHECKING:
    from snapworker.adapters.store.repository import StateStore
    from snapworker.config import Config, CreateSpec, VerifySpec
    from snapworker.core.targets import Pair
    from snapworker.service.tick import Runtime


class Daemon:
    """The long-running worker; :meth:`run` blocks until a stop signal."""

    def __init__(
        self,
        config: Config,
        config_path: Path | None = None,
        *,
        runtime_factory: Callable[
            [Config, StateStore | None, Callable[[float], None]], Runtime | FleetTargets
        ]
        | None = None,
        sqs_client: Any = None,
        log: Any = None,
    ) -> None:
        from snapworker.logs import get_logger

        self.config = config
        self.config_path = config_path or config.source_path
        self.log = log or get_logger(component="daemon")
        self.stopper = GracefulStop(log=self.log)
        self.stop_event = self.stopper.event
        self.reload_event = threading.Event()
        self.tick_lock = threading.Lock()
        self.holder = new_holder()
        self.metrics = Metrics()
        self._factory = runtime_factory or _bootstrap
        self.targets = self._runtime(config, None)
        self.metrics.use_stats(self.targets.stats)
        self._sqs_client = sqs_client
        self._event_policies: set[str] = set()
        self._event_lock = threading.Lock()
        self.poller: SqsPoller | None = None
        self.http: HealthServer | None = None
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)
        self.last_result: FleetResult | None = None
        """The last tick over every policy (a reconcile), for the page at ``/``."""
        self._page_lock = threading.Lock()
        self._page: tuple[FleetResult, str] | None = None

    # -- retries that a stop cuts short ---------------------------------------------------

    def _runtime(self, config: Config, store: StateStore | None) -> FleetTargets | SinglePair:
        """The fleet's adapters, whose waits a stop cuts short: the rate limiters' pacing
        returns early (the last action goes ahead), the retry backoff raises (no further
        attempt). A factory that gives one ready runtime (tests) is a fleet of one pair."""
        made = self._factory(config, store, self._pace)
        if isinstance(made, FleetTargets):
            made.backoff = self._sleep
            return made
        made.gateway.sleep = self._sleep
        return SinglePair(made)

    @property
    def rt(self) -> Runtime:
        """The one pair's runtime, when the daemon was given one (tests)."""
        assert isinstance(self.targets, SinglePair), "a fleet has a runtime per pair"
        return self.targets.rt

    @property
    def store(self) -> StateStore:
        return self.targets.store

    def _pace(self, seconds: float) -> None:
        self.stopper.pace(seconds)

    def _sleep(self, seconds: float) -> None:
        """The gateway's retry backoff: returns early, with an error, when stopping."""
        self.stopper.backoff(seconds)

    # -- jobs -----------------------------------------------------------------------------

    def install_jobs(self, now: datetime | None = None) -> None:
        """(Re)create the jobs from the current config. ``now``: when the start-up
        reconcile and the first prune run, and what the cron jobs' first fire times are
        counted from (default: the clock)."""
        now = now or datetime.now(UTC)
        for job in self.scheduler.get_jobs():
            if job.id.startswith(("create:", "verify:")):
                job.remove()
        d = self.config.daemon
        self.scheduler.add_job(
            self.reconcile,
            IntervalTrigger(seconds=d.reconcile_interval_seconds, timezone=UTC),
            id="reconcile",
            name="reconcile every policy",
            kwargs={"reason": "interval"},
            next_run_time=now,
            replace_existing=True,
        )
        for p in self.config.policies:
            # A tick of the policy at each fire time of its create schedule, and of its verify
            # schedule (which plans the drill then, not at the next reconcile interval).
            cron: list[tuple[str, CreateSpec | VerifySpec | None, str, str]] = [
                ("create", p.create, "schedule of", "schedule"),
                ("verify", p.verify, "restore drill of", "verify"),
            ]
            for kind, spec, label, reason in cron:
                if spec is None:
                    continue
                trigger = CronFireTrigger(spec.schedule, spec.timezone)
                self.scheduler.add_job(
                    self.run_tick,
                    trigger,
                    id=f"{kind}:{p.name}",
                    name=f"{label} {p.name}",
                    args=[[p.name], reason],
                    # From ``now``, not from the clock when the scheduler starts: APScheduler
                    # computes an unset first fire time from the real clock at start.
                    next_run_time=trigger.get_next_fire_time(None, now),
                    replace_existing=True,
                )
        self.scheduler.add_job(
            self.prune,
            IntervalTrigger(seconds=int(PRUNE_EVERY.total_seconds()), timezone=UTC),
            id="prune",
            name="prune history",
            next_run_time=now,
            replace_existing=True,
        )

    def reconcile(self, reason: str = "interval") -> FleetResult | None:
        return self.run_tick(None, reason)

    def _lock_tick(self) -> bool:
        """Wait for the tick lock unless stopping (ticks never overlap in a process)."""
        while not self.stop_event.is_set():
            if self.tick_lock.acquire(timeout=0.2):
                return True
        return False

    def run_tick(self, policies: Sequence[str] | None, reason: str) -> FleetResult | None:
        """One tick, logged and counted; never raises (the scheduler must keep going)."""
        if not self._lock_tick():
            return None
        try:
            if self.stop_event.is_set():
                return None
            return self._tick(list(policies) if policies else None, reason)
        finally:
            self.tick_lock.release()

    def _tick(self, policies: list[str] | None, reason: str) -> FleetResult | None:
        started = time.monotonic()
        log = self.log.bind(reason=reason, policies=policies or "all")

        def on_plan(pair: Pair, plan: Any) -> None:
            for a in plan.actions:
                log.info(
                    "planned",
                    target=pair.target,
                    region=pair.region,
                    policy=a.policy,
                    cluster=a.cluster,
                    action=a.kind,
                    snapshot=a.snapshot,
                    why=a.reason,
                )

        try:
            result = fleet_tick(
                self.config,
                self.targets,
                policy_names=policies,
                mode="daemon",
                on_plan=on_plan,
                should_stop=self.stop_event.is_set,
                holder=self.holder,
                log=log,
                clock=self.targets.clock,
            )
        except Exception as e:
            self.metrics.tick_done(time.monotonic() - started, [], False, [])
            log.error("tick failed", error=f"{type(e).__name__}: {e}")
            return None
        seconds = time.monotonic() - started
        skipped = [(name, p.target, p.region) for p, name in result.skipped]
        # The tick is a success unless every pair failed (one bad account is reported by
        # its own series; it does not make the whole daemon unhealthy).
        worked = not result.pairs or any(r.error is None for r in result.pairs)
        self.metrics.tick_done(seconds, result.outcomes, worked, skipped)
        for r in result.pairs:
            self.metrics.pair_done(r.pair.target, r.pair.region, r.error is None)
        ok = sum(1 for o in result.outcomes if o.ok)
        log.info(
            "tick",
            pairs=len(result.pairs),
            failed_pairs=[e.pair.key for e in result.errors],
            planned=dict(Counter(a.kind for r in result.results for a in r.plan.actions)),
            ok=ok,
            failed=len(result.outcomes) - ok,
            skipped=[f"{p.key}:{name}" for p, name in result.skipped],
            reconciled=sum(r.reconciled for r in result.results),
            adopted=sum(r.adopted for r in result.results),
            seconds=round(seconds, 3),
        )
        if policies is None and any(r.inventory is not None for r in result.results):
            self.last_result = result
        if self._needs_poll(result):
            self._schedule_poll()
        return result

    def _needs_poll(self, fleet: FleetResult) -> bool:
        """A snapshot we just made, or one of ours still ``creating``: look again soon.
        Also when a policy was skipped (another process held its lease): that process
        may leave work (a share after its copy) that only a later tick does."""
        return any(self._pair_needs_poll(r) for r in fleet.results)

    def _pair_needs_poll(self, result: TickResult) -> bool:
        if result.skipped:
            return True
        if any(o.ok and o.action.kind in ("create", "copy") for o in result.outcomes):
            return True
        inv = result.inventory
        if inv is None:
            return False
        ours = {k.snapshot for k in result.plan.kept}
        names = {p.name for p in self.config.policies}
        return any(
            s.status == "creating" and (s.id in ours or s.tags.get(TAG_POLICY) in names)
            for s in inv.snapshots.values()
        )

    def _schedule_poll(self) -> None:
        if self.stop_event.is_set():
            return
        when = datetime.now(UTC) + timedelta(seconds=self.config.daemon.poll_creating_seconds)
        self.scheduler.add_job(
            self.reconcile,
            "date",
            run_date=when,
            id="poll-creating",
            name="look again at snapshots still creating",
            kwargs={"reason": "creating"},
            replace_existing=True,
        )

    # -- events ---------------------------------------------------------------------------

    def on_event(self, event: RedshiftEvent) -> None:
        """An external Redshift event: an immediate tick of the policies it concerns."""
        names = policies_for_cluster(self.config, event.cluster)
        if not names:
            self.log.info("event ignored: no policy selects the cluster", cluster=event.cluster)
            return
        with self._event_lock:
            self._event_policies.update(names)
        # A job of its own per event: one still running would make APScheduler skip a
        # second instance of the same job id; the pending set merges them instead.
        self.scheduler.add_job(
            self._event_tick, id=f"event-{uuid.uuid4().hex[:12]}", name="event reconcile"
        )

    def _event_tick(self) -> None:
        if not self._lock_tick():
            return
        try:
            with self._event_lock:
                names = sorted(self._event_policies)
                self._event_policies.clear()
            if names and not self.stop_event.is_set():
                self._tick(names, "event")
        finally:
            self.tick_lock.release()

    # -- housekeeping ---------------------------------------------------------------------

    def prune(self) -> int:
        """Delete journal entries and runs older than ``daemon.history_days``."""
        if not self._lock_tick():
            return 0
        try:
            before = self.targets.clock() - timedelta(days=self.config.daemon.history_days)
            n = self.store.prune(before)
            self.log.info("pruned history", rows=n, before=before.isoformat())
            return n
        except Exception as e:
            self.log.error("prune failed", error=str(e))
            return 0
        finally:
            self.tick_lock.release()

    def page(self) -> str | None:
        """The HTML report of the last tick over every policy (None before the first):
        what that tick planned, and the state DB's failures and drills now. Drawn once per
        tick, on the first request after it; read-only."""
        result = self.last_result
        if result is None or result.generated_at is None:
            return None
        with self._page_lock:
            if self._page is not None and self._page[0] is result:
                return self._page[1]
            when = result.generated_at.strftime("%Y-%m-%d %H:%M UTC")
            html = html_page(
                self.targets,
                self.config,
                None,
                result,
                what_if=False,
                heading=f"The daemon's last tick, at {when}",
            )
            self._page = (result, html)
            return html

    def owned_counts(self) -> dict[tuple[str, str, str], int]:
        """Live owned snapshots by (policy, target, region), for ``/metrics``."""
        counts: Counter[tuple[str, str, str]] = Counter()
        for policy, clusters in self.store.owned_summary().owned.items():
            for views in clusters.values():
                for v in views:
                    if v.deleted_at is None:
                        counts[(policy, v.target or "", v.region)] += 1
        return dict(counts)

    # -- reload ---------------------------------------------------------------------------

    def reload(self) -> bool:
        """Reload the config file; a bad one is logged and the running one kept."""
        from snapworker.config import ConfigError, load_config

        if self.config_path is None:
            self.log.error("config reload: no config file to read")
            self.metrics.reload("refused")
            return False
        try:
            new = load_config(self.config_path)
        except ConfigError as e:
            self.log.error(
                "config reload refused; keeping the running config",
                file=str(self.config_path),
                problems=[str(p) for p in e.problems],
            )
            self.metrics.reload("refused")
            return False
        if not self._lock_tick():
            return False
        try:
            same_db = new.state_url == self.config.state_url
            try:
                targets = self._runtime(new, self.store if same_db else None)
            except Exception as e:
                self.log.error("config reload refused; keeping the running config", error=str(e))
                self.metrics.reload("refused")
                return False
            old = self.targets
            self.targets, self.config = targets, new
            self.metrics.use_stats(targets.stats)
            if not same_db:
                old.store.close()
            self.install_jobs()
        finally:
            self.tick_lock.release()
        self.metrics.reload("ok")
        self.log.info("config reloaded", policies=[p.name for p in new.policies])
        return True

    # -- life cycle -----------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self.stopper.request()

    def _on_hup(self, *_: Any) -> None:
        self.reload_event.set()

    def start(self) -> None:
        """Start the endpoint, the poller and the scheduler (the start-up reconcile)."""
        d = self.config.daemon
        if d.http is not None:
            self.http = HealthServer(
                d.http.host,
                d.http.port,
                self.metrics,
                stale_after=lambda: 3.0 * self.config.daemon.reconcile_interval_seconds,
                owned=self.owned_counts,
                log=self.log,
                page=self.page,
            )
            self.http.start()
            host, port = self.http.address
            self.log.info("health endpoint", url=f"http://{host}:{port}/healthz")
        if d.sqs_queue_url:
            client = self._sqs_client or _sqs_client(self.config)
            self.poller = SqsPoller(
                client,
                d.sqs_queue_url,
                self.on_event,
                self.log,
                delete_bad=d.delete_bad_messages,
                wait_seconds=SQS_WAIT_SECONDS,
                on_message=self.metrics.message,
            )
            self.poller.start()
        self.install_jobs()
        self.scheduler.start()
        self.log.info(
            "daemon started",
            policies=[p.name for p in self.config.policies],
            reconcile_interval_seconds=d.reconcile_interval_seconds,
            stop_bound_seconds=stop_bound_seconds(self.config),
        )

    def shutdown(self) -> None:
        """Wait for the tick in progress (it starts no new action), then stop everything."""
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.poller is not None:
            self.poller.stop()
        if self.http is not None:
            self.http.stop()
        self.store.close()
        self.log.info("daemon stopped")

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code (0 after a graceful stop)."""
        for sig in SIGNALS:
            signal.signal(sig, self.request_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        try:
            self.start()
        except OSError as e:  # the health port is taken, ...
            self.log.error("daemon could not start", error=str(e))
            self.shutdown()
            return 2
        while not self.stop_event.wait(0.5):
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
        self.shutdown()
        return 0


def _bootstrap(
    config: Config, store: StateStore | None, sleep: Callable[[float], None]
) -> FleetTargets:
    return fleet(config, store=store, pace=sleep)


def _sqs_client(config: Config) -> Any:
    """An SQS client from the standard chain (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SQS are
    honoured by boto3; ``aws.endpoint_url`` is Redshift's and is not used for SQS)."""
    import boto3

    session = boto3.session.Session(profile_name=config.aws.profile, region_name=config.aws.region)
    return session.client("sqs")
