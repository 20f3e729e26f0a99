"""Prometheus metrics: request latency by route, lookups, pushes, and feed runs and failures.

Feed runs happen in workers; their counters live in feed health (Redis) and are read at scrape
time, so every API process reports the same totals.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from aggregator.access_log import ASGIApp, Receive, Scope, Send, observed
from aggregator.errors import StoreUnavailable
from aggregator.store import Store
from config.registry import Registry


class _FeedCollector(Collector):
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        runs = CounterMetricFamily("centers_feed_runs", "Feed runs attempted", labels=["feed"])
        failures = CounterMetricFamily("centers_feed_failures", "Feed runs that failed", labels=["feed"])
        held = GaugeMetricFamily("centers_feed_held", "1 when a feed's run waits for an operator", labels=["feed"])
        up = GaugeMetricFamily("centers_store_up", "1 when the Redis store answers")
        try:
            states = self.store.feed_states([f.id for f in self.registry.feeds])
            up.add_metric([], 1)
        except StoreUnavailable:
            states = {}
            up.add_metric([], 0)
        for feed_id, s in states.items():
            runs.add_metric([feed_id], float(s.runs or 0))
            failures.add_metric([feed_id], float(s.failures or 0))
            held.add_metric([feed_id], 1.0 if s.held_reason else 0.0)
        yield from (runs, failures, held, up)


class Metrics:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "centers_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.lookups = Counter("centers_lookups", "Near-you searches", ["audience", "result"], registry=self.registry)
        self.pushes = Counter("centers_pushes", "Partner pushes", ["feed", "outcome"], registry=self.registry)
        self.registry.register(_FeedCollector(store, registry))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)

    def lookup(self, audience: str, found: bool) -> None:
        self.lookups.labels(audience, "found" if found else "empty").inc()

    def push(self, feed: str, outcome: str) -> None:
        self.pushes.labels(feed, outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimingMiddleware:
    """Every HTTP request's latency by method, route template (never the path itself: it may hold an id) and
    status. Plain ASGI: Starlette's ``BaseHTTPMiddleware`` cost each request a task group and a stream."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def done(status: int, seconds: float) -> None:
            path = getattr(scope.get("route"), "path", "unmatched")  # the router notes the route it chose
            self.metrics.observe(scope["method"], path, status, seconds)

        await observed(self.app, scope, receive, send, done)
