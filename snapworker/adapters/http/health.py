"""The daemon's health and metrics: counters it keeps, and an optional HTTP endpoint.

``GET /healthz``: 200 with the age of the last successful tick, or 503 when there has been
none yet or it is older than ``stale_after`` (three reconcile intervals): the loop is stuck
or AWS/the state DB cannot be reached. A tick is successful when it observed, planned and
applied to its end; an action that AWS refused is a failed *action* (see the metrics),
not a failed tick.

``GET /metrics``: Prometheus text exposition format (0.0.4), written by hand (the format is
small, and the daemon then needs no extra dependency nor its import time).

The server is the standard library's ``ThreadingHTTPServer`` in a daemon thread; it
answers nothing but these two paths, and never blocks a tick (the metrics are read under a
short lock; owned-snapshot counts come from a callable the daemon gives it).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _num(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Metrics:
    """What the daemon counts; thread-safe. ``render`` writes the exposition text."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self.actions: Counter[tuple[str, str]] = Counter()  # (kind, outcome)
        self.ticks: Counter[str] = Counter()  # ok / error / skipped
        self.messages: Counter[str] = Counter()  # ok / bad / error
        self.skipped: Counter[str] = Counter()  # policy
        self.reloads: Counter[str] = Counter()  # ok / refused
        self.tick_seconds_sum = 0.0
        self.tick_seconds_count = 0
        self.last_tick_seconds = 0.0
        self.last_success: float | None = None
        self.started = clock()
        # AWS calls: counts of gateways no longer in use (a SIGHUP reload makes a new one)
        # plus the live gateway's own counters.
        self._calls_base: Counter[str] = Counter()
        self._retries_base: Counter[str] = Counter()
        self._stats: Any = None

    def use_stats(self, stats: Any) -> None:
        """The live gateway's CallStats; the previous one's counts are kept."""
        with self._lock:
            if self._stats is not None:
                with self._stats._lock:
                    self._calls_base.update(self._stats.calls)
                    self._retries_base.update(self._stats.retries)
            self._stats = stats

    def tick_done(self, seconds: float, outcomes: list[Any], ok: bool, skipped: list[str]) -> None:
        with self._lock:
            self.ticks["ok" if ok else "error"] += 1
            self.tick_seconds_sum += seconds
            self.tick_seconds_count += 1
            self.last_tick_seconds = seconds
            for o in outcomes:
                self.actions[(o.action.kind, o.outcome)] += 1
            for name in skipped:
                self.skipped[name] += 1
            if ok:
                self.last_success = self.clock()

    def message(self, outcome: str) -> None:
        with self._lock:
            self.messages[outcome] += 1

    def reload(self, result: str) -> None:
        with self._lock:
            self.reloads[result] += 1

    def last_success_age(self) -> float | None:
        with self._lock:
            return None if self.last_success is None else self.clock() - self.last_success

    def render(self, owned: Mapping[str, int] | None = None) -> str:
        out: list[str] = []

        def family(
            name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]
        ) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{_labels(labels)} {_num(value)}")

        with self._lock:
            calls = Counter(self._calls_base)
            retries = Counter(self._retries_base)
            if self._stats is not None:
                with self._stats._lock:
                    calls.update(self._stats.calls)
                    retries.update(self._stats.retries)
            family(
                "snapworker_actions_total",
                "counter",
                "Actions attempted, by kind and outcome (created, copied, shared, failed, ...).",
                [({"kind": k, "outcome": o}, n) for (k, o), n in sorted(self.actions.items())],
            )
            family(
                "snapworker_aws_calls_total",
                "counter",
                "Redshift API calls, by operation (one per logical call).",
                [({"operation": op}, n) for op, n in sorted(calls.items())],
            )
            family(
                "snapworker_aws_retries_total",
                "counter",
                "Redshift API calls retried by snapworker's own retry layer, by operation.",
                [({"operation": op}, n) for op, n in sorted(retries.items())],
            )
            family(
                "snapworker_ticks_total",
                "counter",
                "Ticks, by result (ok: ran to its end; error: cut short by an error).",
                [({"result": r}, n) for r, n in sorted(self.ticks.items())],
            )
            family(
                "snapworker_policy_skipped_total",
                "counter",
                "Ticks that skipped a policy because another process held its lease.",
                [({"policy": p}, n) for p, n in sorted(self.skipped.items())],
            )
            family(
                "snapworker_queue_messages_total",
                "counter",
                "SQS messages, by outcome (ok, bad, error).",
                [({"outcome": o}, n) for o, n in sorted(self.messages.items())],
            )
            family(
                "snapworker_config_reloads_total",
                "counter",
                "Config reloads on SIGHUP, by result (ok; refused: the running config kept).",
                [({"result": r}, n) for r, n in sorted(self.reloads.items())],
            )
            family(
                "snapworker_tick_duration_seconds",
                "summary",
                "Duration of ticks.",
                [],
            )
            out.append(f"snapworker_tick_duration_seconds_sum {_num(self.tick_seconds_sum)}")
            out.append(f"snapworker_tick_duration_seconds_count {self.tick_seconds_count}")
            family(
                "snapworker_last_tick_duration_seconds",
                "gauge",
                "Duration of the last tick.",
                [({}, self.last_tick_seconds)],
            )
            family(
                "snapworker_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last successful tick (0: none yet).",
                [({}, self.last_success or 0.0)],
            )
            family(
                "snapworker_start_time_seconds",
                "gauge",
                "Unix time the daemon started.",
                [({}, self.started)],
            )
        if owned is not None:
            family(
                "snapworker_snapshots_owned",
                "gauge",
                "Snapshots the worker owns (not deleted), by policy, per the state DB.",
                [({"policy": p}, n) for p, n in sorted(owned.items())],
            )
        return "\n".join(out) + "\n"


class HealthServer:
    """``/healthz`` and ``/metrics`` on ``host:port`` in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        stale_after: Callable[[], float],
        owned: Callable[[], Mapping[str, int]] | None = None,
        log: Any = None,
    ) -> None:
        self.metrics = metrics
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
        owned: Mapping[str, int] | None = None
        if self.owned is not None:
            try:
                owned = self.owned()
            except Exception as e:  # a busy state DB: the rest of the metrics still answer
                if self.log is not None:
                    self.log.warning("metrics: owned snapshots unavailable", error=str(e))
        return self.metrics.render(owned)

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
