"""Listing every snapshot of one account and region: account-wide, or per cluster in parallel.

Two ways give the same snapshots:

**Account-wide** (``sequential``): DescribeClusterSnapshots pages of 100, one after another,
each page's ``Marker`` naming the next. ceil(snapshots / 100) calls, the call floor; but
the pages cannot overlap, so the wall time is that many round trips.

**Per cluster** (``per_cluster``): for each cluster DescribeClusters listed, its own paged
listing (``ClusterIdentifier``), on a bounded pool of threads; plus one paged listing with
``ClusterExists=false`` and no cluster: the *orphaned* snapshots, those of clusters that no
longer exist. Without that one a deleted cluster's manual snapshots (the ones retention
must still age out) would never be seen. Sum over clusters of ceil(its snapshots / 100),
plus the orphans' pages: more calls than the floor when clusters hold few snapshots each,
but up to ``workers`` round trips in flight at once.

Races, which the account-wide listing has too (a snapshot made while the pages are read
may or may not show): a cluster deleted after DescribeClusters and before its own listing
either still answers with its snapshots, or answers ``ClusterNotFound``; then the orphans'
listing is read again once every cluster's listing is done, so those snapshots, orphans
by then, are not lost. A cluster created after DescribeClusters is listed next time (the
inventory does not hold it either).

One difference, documented rather than hidden: AWS's account-wide listing also returns
manual snapshots *other* accounts shared with this one. Whether ``ClusterExists=false``
returns them is not documented; they are never this account's to keep or delete (the
planner owns only snapshots whose ``OwnerAccount`` is this account), so retention does not
depend on them.

:func:`snapshots` chooses without knowing how many snapshots there are (no API says) by
starting account-wide, and switching to per cluster only once the account-wide listing has
read ``switch_after(clusters, workers)`` pages and is still not done: the larger of
(clusters + 1) / workers, the fewest rounds the per-cluster listing can take, and
clusters / 2 (so at least 50 snapshots per cluster on average, which bounds the extra calls
per cluster). The pages read so far are dropped (the per-cluster listing is complete by
itself). Every listing that ends within that many pages, most of them, costs exactly what
it did, at the call floor; a listing that switches has spent at most the per-cluster
listing's own minimum in rounds before it, the rent-or-buy bound: never much worse than the
better of the two ways, and far better where clusters hold many snapshots each. The
figures behind the choice: ``bench/listing.py`` (bench/README.md, and the README's
Performance section). Either way the items come back in one order, snapshot creation time
then id, whatever order the threads finished in.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any, Protocol

from snapworker.adapters.aws.errors import AwsError

Raw = dict[str, Any]
Progress = Callable[[int, bool], None]

DEFAULT_WORKERS = 8
"""Listing threads per (account, region) when the gateway is not told otherwise."""

PARALLEL_MIN_CLUSTERS = 2
"""Fewest clusters for which the listing may switch to per cluster (see the module docstring)."""

MIN_PAGES_BEFORE_SWITCH = 3
"""Account-wide pages read, at least, before switching: an account a few pages list does not
pay a call per cluster."""

CLUSTER_GONE = "ClusterNotFound"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Pages(Protocol):
    """One paged DescribeClusterSnapshots listing with these filters, item by item;
    ``progress`` is told after each page how many items so far and whether more follow."""

    def __call__(self, progress: Progress | None = None, **params: Any) -> Iterator[Raw]: ...


def switch_after(clusters: int, workers: int) -> int | None:
    """Account-wide pages after which the listing, not done yet, goes per cluster; None:
    never (one worker, or too few clusters)."""
    if workers <= 1 or clusters < PARALLEL_MIN_CLUSTERS:
        return None
    rounds = math.ceil((clusters + 1) / workers)  # the per-cluster listing's fewest
    return max(MIN_PAGES_BEFORE_SWITCH, rounds, math.ceil(clusters / 2))


class _Switch(Exception):
    """Raised from the page callback to stop the account-wide listing before its next page."""


def snapshots(
    pages: Pages,
    clusters: Collection[str],
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
) -> list[Raw]:
    """Every snapshot of the account and region, by the way the module docstring chooses."""
    budget = switch_after(len(clusters), workers)
    if budget is None:
        return sequential(pages, progress)
    read = 0
    reported = 0

    def page(listed: int, more: bool) -> None:
        nonlocal read, reported
        read += 1
        if more and read >= budget:
            raise _Switch
        reported = listed
        if progress is not None:
            progress(listed, more)

    items: list[Raw] = []
    try:
        items.extend(pages(page))
    except _Switch:

        def after(listed: int, more: bool) -> None:  # never back below what was shown
            if progress is not None:
                progress(max(listed, reported), more)

        return per_cluster(pages, clusters, workers, after)
    return _ordered(items)


def sequential(pages: Pages, progress: Progress | None = None) -> list[Raw]:
    """The account-wide listing, page after page."""
    return _ordered(pages(progress))


class _Tally:
    """Adds up the pages of listings running side by side for one ``progress``."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.listed = 0
        self.lock = threading.Lock()

    def listing(self) -> Progress | None:
        if self.progress is None:
            return None
        seen = 0

        def page(listed: int, _more: bool) -> None:
            nonlocal seen
            with self.lock:
                self.listed += listed - seen
                seen = listed
                assert self.progress is not None
                self.progress(self.listed, True)

        return page

    def done(self) -> None:
        if self.progress is not None:
            with self.lock:
                self.progress(self.listed, False)


def per_cluster(
    pages: Pages,
    clusters: Collection[str],
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
) -> list[Raw]:
    """Each cluster's listing and the orphans' listing, at most ``workers`` at a time. The
    first error (after its retries) cancels the listings not yet started and is raised."""
    tally = _Tally(progress)
    gone = threading.Event()

    def orphans() -> list[Raw]:
        return list(pages(tally.listing(), ClusterExists=False))

    def cluster(cid: str) -> list[Raw]:
        try:
            return list(pages(tally.listing(), ClusterIdentifier=cid))
        except AwsError as e:
            if e.code != CLUSTER_GONE:
                raise
            gone.set()  # deleted since DescribeClusters: its snapshots are orphans now
            return []

    pool = ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(clusters) + 1)),
        thread_name_prefix="snapworker-listing",
    )
    try:
        futures: list[Future[list[Raw]]] = [pool.submit(orphans)]
        futures += [pool.submit(cluster, cid) for cid in sorted(clusters)]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for f in finished:
            error = f.exception()
            if error is not None:
                raise error
        items = [raw for f in futures for raw in f.result()]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if gone.is_set():
        items += orphans()
    tally.done()
    return _ordered(items)


def _ordered(items: Iterator[Raw] | list[Raw]) -> list[Raw]:
    """One item per snapshot id (the last one read wins, as a dict keyed by id would keep
    it), by creation time then id."""
    by_id = {raw["SnapshotIdentifier"]: raw for raw in items}
    return sorted(by_id.values(), key=_order_key)


def _order_key(raw: Raw) -> tuple[datetime, str]:
    when = raw.get("SnapshotCreateTime")
    if not isinstance(when, datetime):
        when = _EPOCH
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when, str(raw["SnapshotIdentifier"])
