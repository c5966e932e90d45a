"""The fleet: one tick over every (target, region) pair, each isolated from the others.

Each pair is worked by the one-pair tick (``snapworker.service.tick``) with its own gateway
(its own credentials, client, rate limiter) and its own slice of the state DB (the store
scoped to its account and region). A bounded thread pool (``fleet.max_parallel_targets``)
runs the pairs, so a slow pair holds up one worker of the pool and no other pair; each pair
keeps its own per-cluster concurrency (``aws.max_concurrency``).

Isolation: a pair whose role cannot be assumed, that answers AccessDenied, or that throttles
past its retries ends as a :class:`~snapworker.core.targets.PairError`, recorded as a failed
run of that pair (naming the error) and logged; every other pair goes on, and the exit code
is 1. What is not a pair's own trouble is not isolated: a state DB failure, a config or
usage error (the same for every pair) ends the whole tick as before.

Work is leased per (policy, target, region) (``snapworker.service.leases``), so replicas on
one PostgreSQL state DB share the pairs: each replica works the pairs in its own order (a
rotation seeded by its holder id), takes a pair's leases only when it starts that pair, and
skips a pair another replica is working.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from snapworker.adapters.store.errors import StateStoreError
from snapworker.core.model import Plan
from snapworker.core.targets import DEFAULT_TARGET, Pair, PairError, PairPlan, matches, select_pairs
from snapworker.errors import SnapworkerError, UsageError
from snapworker.service.executor import Outcome
from snapworker.service.leases import new_holder
from snapworker.service.ports import ListingProgress, StateRepository
from snapworker.service.tick import Runtime, TickResult, select_policies, tick

if TYPE_CHECKING:
    from snapworker.config import Config


class UnknownTarget(UsageError, ValueError):
    """``--target`` globs that match no target of the config."""


class Targets(Protocol):
    """The adapters' side of the fleet (``snapworker.service.bootstrap.FleetTargets``;
    :class:`SinglePair` for a ready runtime)."""

    def pairs(self) -> list[Pair]:
        """Every pair of the config, in the config's order, Organizations' accounts after
        the listed targets."""
        ...

    def account_of(self, pair: Pair) -> str:
        """The pair's account (its role's, or the worker's own: STS GetCallerIdentity);
        raises when the target cannot be reached (``TargetUnavailable``)."""
        ...

    def runtime_for(
        self, pair: Pair, account: str, batch: str | None = None, with_legacy: bool = False
    ) -> Runtime[StateRepository]:
        """The pair's runtime: its gateway (client made now, role assumed now) and its
        slice of the state DB (whose runs carry ``batch``, one fleet tick's id;
        ``with_legacy``: which also reads the unclaimed rows from before the fleet)."""
        ...

    def claim_unscoped(self, pair: Pair, account: str) -> int:
        """Give the rows of a state DB from before the fleet (no account, no region) to this
        account and region; returns how many."""
        ...

    def record_failure(self, pair: Pair, error: str, mode: str, batch: str) -> None:
        """A failed run of the pair, naming the error, for ``status`` and the metrics."""
        ...


class SinglePair:
    """A ready runtime as a fleet of one pair (tests, and code that wires its own client):
    the pair ``default`` in the gateway's region, its runtime as given (its store is
    already the pair's)."""

    def __init__(self, rt: Runtime[Any], region: str = "", account: str | None = None) -> None:
        self.rt = rt
        self.config = rt.config
        self.store = rt.store
        self.clock = rt.clock
        self.stats = rt.gateway.stats
        self._pair = Pair(DEFAULT_TARGET, region, account)

    def pairs(self) -> list[Pair]:
        return [self._pair]

    def account_of(self, pair: Pair) -> str:
        return pair.account or self.rt.gateway.account_id() or ""

    def runtime_for(
        self, pair: Pair, account: str, batch: str | None = None, with_legacy: bool = False
    ) -> Runtime[StateRepository]:
        return self.rt

    def claim_unscoped(self, pair: Pair, account: str) -> int:
        return 0  # the runtime's store is the pair's as it is

    def record_failure(self, pair: Pair, error: str, mode: str, batch: str) -> None:
        at = self.clock()
        run_id = self.store.begin_run(mode, os.getpid(), at)
        self.store.finish_run(run_id, "failed", 0, 0, {}, error, at)


@dataclass
class PairResult:
    """What became of one pair: its tick's result, or the error that skipped it."""

    pair: Pair
    result: TickResult | None = None
    error: str | None = None


@dataclass
class FleetResult:
    pairs: list[PairResult] = field(default_factory=list)
    generated_at: datetime | None = None

    @property
    def plans(self) -> list[PairPlan]:
        return [PairPlan(r.pair, r.result.plan) for r in self.pairs if r.result is not None]

    @property
    def errors(self) -> list[PairError]:
        return [PairError(r.pair, r.error) for r in self.pairs if r.error is not None]

    @property
    def pair_outcomes(self) -> list[tuple[Pair, Outcome]]:
        """Every outcome with its pair, pair by pair in the config's order."""
        return [(r.pair, o) for r in self.pairs if r.result is not None for o in r.result.outcomes]

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for _, o in self.pair_outcomes]

    @property
    def results(self) -> list[TickResult]:
        """The ticks of the pairs that were worked (not those that failed)."""
        return [r.result for r in self.pairs if r.result is not None]

    @property
    def skipped(self) -> list[tuple[Pair, str]]:
        """(pair, policy) another process held the lease of."""
        return [(r.pair, name) for r in self.pairs if r.result for name in r.result.skipped]

    @property
    def interrupted(self) -> bool:
        return any(r.result is not None and r.result.interrupted for r in self.pairs)

    @property
    def exit_code(self) -> int:
        """1 if a pair failed, or any pair's tick would exit 1 (a failed action, a skipped
        policy, an interruption)."""
        if self.errors:
            return 1
        return max((r.result.exit_code for r in self.pairs if r.result is not None), default=0)


def one_line(e: BaseException) -> str:
    """An exception as the one line the reports show (the AWS error code is in the text)."""
    text = " ".join(str(e).split())
    return text or type(e).__name__


def pair_order(pairs: Sequence[Pair], holder: str) -> list[Pair]:
    """The pairs rotated by a hash of ``holder``: replicas ticking at the same moment start
    on different pairs, so the work spreads across them instead of one taking it all."""
    if len(pairs) < 2:
        return list(pairs)
    start = zlib.crc32(holder.encode()) % len(pairs)
    return list(pairs[start:]) + list(pairs[:start])


def selected_pairs(targets: Targets, globs: Sequence[str] | None) -> list[Pair]:
    pairs = targets.pairs()
    chosen = select_pairs(pairs, globs)
    if globs and not chosen:
        names = sorted({p.target for p in pairs})
        raise UnknownTarget(
            f"--target {' '.join(globs)} matches no target (the config has "
            f"{', '.join(names) if names else 'none'})"
        )
    return chosen


def fleet_tick(
    config: Config,
    targets: Targets,
    *,
    policy_names: Sequence[str] | None = None,
    target_globs: Sequence[str] | None = None,
    dry_run: bool = False,
    mode: str = "run",
    progress: Callable[[Pair, Outcome], None] | None = None,
    on_plan: Callable[[Pair, Plan], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    holder: str | None = None,
    listing: ListingProgress | None = None,
    log: Any = None,
    clock: Callable[[], datetime] | None = None,
) -> FleetResult:
    """Observe, plan and (unless ``dry_run``) apply over every selected pair, each with the
    policies whose ``targets`` match it. See the module docstring for isolation."""
    policies = select_policies(config, policy_names)
    every = targets.pairs()
    pairs = selected_pairs(targets, target_globs)
    holder = holder or new_holder()
    batch = uuid.uuid4().hex
    legacy = every[0] if every else None
    result = FleetResult(generated_at=clock() if clock else None)

    def work(pair: Pair) -> PairResult:
        names = [p.name for p in policies if matches(pair.target, p.targets)]
        if not names:
            return PairResult(pair, TickResult(Plan(generated_at=_now(clock))))
        if should_stop():
            return PairResult(pair, TickResult(Plan(generated_at=_now(clock)), interrupted=True))
        in_tick = False
        try:
            account = targets.account_of(pair)
            if not dry_run and pair == legacy:
                claimed = targets.claim_unscoped(pair, account)
                if claimed and log is not None:
                    log.info("rows from before the fleet claimed", target=pair.key, rows=claimed)
            # A dry run cannot claim the rows from before the fleet: it reads them instead.
            rt = targets.runtime_for(pair, account, batch, dry_run and pair == legacy)
            # From here a failure is the tick's: its run row records it (finished "failed").
            in_tick = True
            pr = tick(
                rt,
                names,
                dry_run=dry_run,
                mode=mode,
                progress=(lambda o: progress(pair, o)) if progress else None,
                on_plan=(lambda p: on_plan(pair, p)) if on_plan else None,
                should_stop=should_stop,
                holder=holder,
                listing=listing,
                pair=pair,
            )
            return PairResult(pair, pr)
        except UsageError:
            raise
        except Exception as e:
            if _global(e) or not config.is_fleet:
                raise  # one pair without targets: today's behaviour, the error is the command's
            error = one_line(e)
            if log is not None:
                log.error("target failed", target=pair.target, region=pair.region, error=error)
            if not dry_run and not in_tick:
                targets.record_failure(pair, error, mode, batch)
            return PairResult(pair, error=error)

    order = pair_order(pairs, holder)
    width = max(1, min(config.fleet.max_parallel_targets, len(order)))
    if width == 1:
        done = [work(p) for p in order]
    else:
        with ThreadPoolExecutor(width, thread_name_prefix="snapworker-pair") as pool:
            done = list(pool.map(work, order))
    index = {p: i for i, p in enumerate(pairs)}
    result.pairs = sorted(done, key=lambda r: index[r.pair])
    return result


def _now(clock: Callable[[], datetime] | None) -> datetime:
    return clock() if clock is not None else datetime.now(UTC)


def _global(e: Exception) -> bool:
    """A failure that is not the pair's own: the state DB (every pair shares it)."""
    return isinstance(e, StateStoreError)


__all__ = [
    "FleetResult",
    "PairResult",
    "SinglePair",
    "SnapworkerError",
    "Targets",
    "UnknownTarget",
    "fleet_tick",
    "one_line",
    "pair_order",
]
