"""The daemon's health, metrics and page: what it counts, and an optional HTTP endpoint.

``GET /healthz``: 200 with the age of the last successful tick, or 503 when there has been
none yet or it is older than ``stale_after`` (three reconcile intervals): the loop is stuck
or AWS/the state DB cannot be reached. A tick is successful when it observed, planned and
applied to its end; an action that AWS refused is a failed *action* (see the metrics),
not a failed tick.

``GET /metrics``: Prometheus text exposition format (0.0.4), written by ``prometheus_client``
(the library Prometheus users know): snapworker's counters and gauges, a tick-duration
histogram, and the library's process and platform collectors. Each :class:`Metrics` has its
own ``CollectorRegistry``, never the library's global one: a process may hold several
daemons (the tests do), each with its own counts. Only the daemon imports this module;
``run`` and the other commands never import ``prometheus_client``.

Per pair (target, region): the per-policy series carry the labels ``policy``, ``target``
and ``region`` (``snapworker_snapshots_owned``, ``snapworker_policy_skipped_total``);
``snapworker_target_errors_total{target,region}`` counts the pair ticks that failed (its
role could not be assumed, AccessDenied, throttled past its retries: ``error: TARGET/REGION:
...``); ``snapworker_target_last_run_ok{target,region}`` is 1 when the pair's last tick
completed, 0 when it failed, and ``snapworker_target_last_run_timestamp_seconds`` says
when. A label value the worker does not know (a config without ``targets:``, before the
fleet) is empty.

``GET /``: the HTML report of the last tick (a callable the daemon gives; this module does
not render it: adapters do not import the views). Read-only, no secret in it.

The server is the standard library's ``ThreadingHTTPServer`` in a daemon thread; it
answers nothing but these paths, and never blocks a tick (the AWS call counts are read
under the gateway stats' short lock; owned-snapshot counts and the page come from
callables the daemon gives it).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

OwnedKey = str | tuple[str, str, str]
"""A key of the owned-snapshot counts: ``(policy, target, region)``, or a policy alone (its
target and region labels then empty)."""
Owned = Mapping[str, int] | Mapping[tuple[str, str, str], int]
"""Snapshots owned, by policy alone or by (policy, target, region)."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What ``generate_latest`` writes (the classic text format, names escaped to underscores);
the library's ``CONTENT_TYPE_LATEST`` names the 1.0.0 format in newer releases."""
HTML_TYPE = "text/html; charset=utf-8"
TICK_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
"""Seconds: a quiet tick takes well under a second, one copying and deleting hundreds of
snapshots under the rate limit takes minutes."""

# A ``*_created`` gauge per counter series (the library's default) says when the daemon
# started counting, which ``snapworker_start_time_seconds`` already says once.
disable_created_metrics()


def _values(counter: PromCounter, label: str) -> dict[str, int]:
    """A one-label counter's values by label value (for tests and logs)."""
    out: dict[str, int] = {}
    for family in counter.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                out[s.labels[label]] = int(s.value)
    return out


class Metrics:
    """What the daemon counts; thread-safe (the library's metrics are). ``render`` writes
    the exposition text of this daemon's registry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._scrape = threading.Lock()
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._actions = PromCounter(
            "snapworker_actions_total",
            "Actions attempted, by kind and outcome (created, copied, shared, failed, ...).",
            ["kind", "outcome"],
            registry=r,
        )
        self._ticks = PromCounter(
            "snapworker_ticks_total",
            "Ticks, by result (ok: ran to its end; error: cut short by an error).",
            ["result"],
            registry=r,
        )
        self._skipped = PromCounter(
            "snapworker_policy_skipped_total",
            "Ticks that skipped a policy of a target and region because another process held "
            "its lease.",
            ["policy", "target", "region"],
            registry=r,
        )
        self._target_errors = PromCounter(
            "snapworker_target_errors",
            "Pair ticks that failed, by target and region (role not assumed, AccessDenied, "
            "throttled past the retries); the pair was skipped, the others went on.",
            ["target", "region"],
            registry=r,
        )
        self._pairs: dict[tuple[str, str], tuple[bool, float]] = {}
        self._messages = PromCounter(
            "snapworker_queue_messages_total",
            "SQS messages, by outcome (ok, bad, error).",
            ["outcome"],
            registry=r,
        )
        self._reloads = PromCounter(
            "snapworker_config_reloads_total",
            "Config reloads on SIGHUP, by result (ok; refused: the running config kept).",
            ["result"],
            registry=r,
        )
        self._duration = Histogram(
            "snapworker_tick_duration_seconds",
            "Duration of ticks.",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.last_tick_seconds = 0.0
        self.last_success: float | None = None
        self.started = clock()
        # AWS calls: counts of gateways no longer in use (a SIGHUP reload makes a new one)
        # plus the live gateway's own counters.
        self._calls_base: Counter[str] = Counter()
        self._retries_base: Counter[str] = Counter()
        self._stats: Any = None
        self._owned: Callable[[], Owned | None] = lambda: None
        r.register(_Snapshot(self))

    @property
    def reloads(self) -> dict[str, int]:
        return _values(self._reloads, "result")

    def use_stats(self, stats: Any) -> None:
        """The live gateway's CallStats; the previous one's counts are kept."""
        with self._lock:
            if self._stats is not None:
                with self._stats._lock:
                    self._calls_base.update(self._stats.calls)
                    self._retries_base.update(self._stats.retries)
            self._stats = stats

    def tick_done(
        self, seconds: float, outcomes: list[Any], ok: bool, skipped: Sequence[OwnedKey]
    ) -> None:
        """``skipped``: the policies whose lease another process held, each
        ``(policy, target, region)`` (or a policy alone)."""
        self._ticks.labels("ok" if ok else "error").inc()
        self._duration.observe(seconds)
        for o in outcomes:
            self._actions.labels(o.action.kind, o.outcome).inc()
        for key in skipped:
            self._skipped.labels(*_labels(key)).inc()
        with self._lock:
            self.last_tick_seconds = seconds
            if ok:
                self.last_success = self.clock()

    def pair_done(self, target: str, region: str, ok: bool) -> None:
        """A pair's tick ended: completed (``ok``), or failed and was skipped (counted in
        ``snapworker_target_errors_total``). The last one's result and time are gauges."""
        if not ok:
            self._target_errors.labels(target, region).inc()
        with self._lock:
            self._pairs[(target, region)] = (ok, self.clock())

    def pair_errors(self) -> dict[tuple[str, str], int]:
        """The failed pair ticks counted, by (target, region) (for tests and logs)."""
        out: dict[tuple[str, str], int] = {}
        for family in self._target_errors.collect():
            for smp in family.samples:
                if smp.name.endswith("_total"):
                    out[(smp.labels["target"], smp.labels["region"])] = int(smp.value)
        return out

    def pairs(self) -> dict[tuple[str, str], tuple[bool, float]]:
        """Each pair's last tick: (completed, when), by (target, region)."""
        with self._lock:
            return dict(self._pairs)

    def message(self, outcome: str) -> None:
        self._messages.labels(outcome).inc()

    def reload(self, result: str) -> None:
        self._reloads.labels(result).inc()

    def last_success_age(self) -> float | None:
        with self._lock:
            return None if self.last_success is None else self.clock() - self.last_success

    def aws_counts(self) -> tuple[Counter[str], Counter[str]]:
        """(calls, retries) by operation, over every gateway this daemon used."""
        with self._lock:
            calls = Counter(self._calls_base)
            retries = Counter(self._retries_base)
            if self._stats is not None:
                with self._stats._lock:
                    calls.update(self._stats.calls)
                    retries.update(self._stats.retries)
        return calls, retries

    def render(self, owned: Owned | None = None) -> str:
        """The exposition text; ``owned``: snapshots owned by (policy, target, region), or
        by policy alone (None: left out)."""
        with self._scrape:  # one scrape at a time sees its own ``owned``
            self._owned = lambda: owned
            try:
                return generate_latest(self.registry).decode()
            finally:
                self._owned = lambda: None


def _labels(key: OwnedKey) -> tuple[str, str, str]:
    """``(policy, target, region)`` of a key (a policy alone: target and region empty)."""
    return (key, "", "") if isinstance(key, str) else key


class _Snapshot(Collector):
    """The values read at scrape time: AWS call counts (the gateway's own counters), the
    last tick's duration and success, the start time, and the owned-snapshot counts."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        m = self.m
        calls, retries = m.aws_counts()
        family = CounterMetricFamily(
            "snapworker_aws_calls_total",
            "Redshift API calls, by operation (one per logical call).",
            labels=["operation"],
        )
        for op, n in sorted(calls.items()):
            family.add_metric([op], n)
        yield family
        family = CounterMetricFamily(
            "snapworker_aws_retries_total",
            "Redshift API calls retried by snapworker's own retry layer, by operation.",
            labels=["operation"],
        )
        for op, n in sorted(retries.items()):
            family.add_metric([op], n)
        yield family
        yield GaugeMetricFamily(
            "snapworker_last_tick_duration_seconds",
            "Duration of the last tick.",
            value=m.last_tick_seconds,
        )
        yield GaugeMetricFamily(
            "snapworker_last_success_timestamp_seconds",
            "Unix time of the last successful tick (0: none yet).",
            value=m.last_success or 0.0,
        )
        yield GaugeMetricFamily(
            "snapworker_start_time_seconds", "Unix time the daemon started.", value=m.started
        )
        pairs = m.pairs()
        if pairs:
            up = GaugeMetricFamily(
                "snapworker_target_last_run_ok",
                "1 when the last tick of the target in the region completed, 0 when it failed.",
                labels=["target", "region"],
            )
            at = GaugeMetricFamily(
                "snapworker_target_last_run_timestamp_seconds",
                "Unix time the last tick of the target in the region ended.",
                labels=["target", "region"],
            )
            for (target, region), (ok, when) in sorted(pairs.items()):
                up.add_metric([target, region], 1.0 if ok else 0.0)
                at.add_metric([target, region], when)
            yield up
            yield at
        owned = m._owned()
        if owned is not None:
            gauge = GaugeMetricFamily(
                "snapworker_snapshots_owned",
                "Snapshots the worker owns (not deleted), by policy, target and region, per "
                "the state DB.",
                labels=["policy", "target", "region"],
            )
            items: list[tuple[OwnedKey, int]] = list(owned.items())
            for labels, n in sorted((_labels(k), n) for k, n in items):
                gauge.add_metric(list(labels), n)
            yield gauge


class HealthServer:
    """``/healthz``, ``/metrics`` and (given ``page``) ``/`` on ``host:port`` in a daemon
    thread. ``page`` returns the HTML report of the last tick, or None before the first."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        stale_after: Callable[[], float],
        owned: Callable[[], Owned] | None = None,
        log: Any = None,
        page: Callable[[], str | None] | None = None,
    ) -> None:
        self.metrics = metrics
        self.page = page
        self.stale_after = stale_after
        self.owned = owned
        self.log = log
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    status, body, ctype = server.healthz()
                elif path == "/metrics":
                    status, body, ctype = 200, server.render_metrics(), CONTENT_TYPE
                elif path == "/" and server.page is not None:
                    status, body, ctype = server.render_page()
                else:
                    status, body, ctype = 404, "not found\n", "text/plain"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the log

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def healthz(self) -> tuple[int, str, str]:
        age = self.metrics.last_success_age()
        limit = self.stale_after()
        healthy = age is not None and age <= limit
        body = {
            "status": "ok" if healthy else "unhealthy",
            "last_success_age_seconds": None if age is None else round(age, 3),
            "stale_after_seconds": limit,
        }
        return (200 if healthy else 503), json.dumps(body) + "\n", "application/json"

    def render_metrics(self) -> str:
        owned: Owned | None = None
        if self.owned is not None:
            try:
                owned = self.owned()
            except Exception as e:  # a busy state DB: the rest of the metrics still answer
                if self.log is not None:
                    self.log.warning("metrics: owned snapshots unavailable", error=str(e))
        return self.metrics.render(owned)

    def render_page(self) -> tuple[int, str, str]:
        """The report of the last tick; 503 (plain text) before the first, or when it
        cannot be drawn (the metrics and health still answer)."""
        assert self.page is not None
        try:
            html = self.page()
        except Exception as e:
            if self.log is not None:
                self.log.warning("report page unavailable", error=str(e))
            return 503, "the report could not be drawn; see the daemon's log\n", "text/plain"
        if html is None:
            return 503, "no tick has completed yet\n", "text/plain"
        return 200, html, HTML_TYPE

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="snapworker-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
