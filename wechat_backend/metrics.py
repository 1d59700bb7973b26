"""Prometheus metrics of one serving process: requests by route and status, latency, and WeChat
platform calls by errcode. A registry per application (not the library's global one), so several
apps in one process — tests — never share counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _WeChatCalls(Collector):
    def __init__(self, snapshot: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "wb_wechat_api_calls",
            "WeChat platform calls by API path and errcode (or failure reason)",
            labels=["api", "errcode"],
        )
        for (api, outcome), n in sorted(self._snapshot().items()):
            family.add_metric([api, outcome], n)
        yield family


class Metrics:
    def __init__(self, wechat_calls: Callable[[], dict[tuple[str, str], int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "wb_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "wb_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.registry.register(_WeChatCalls(wechat_calls))
        self._sms = Counter(
            "wb_sms_sends", "Binding-code SMS by provider and result", ["provider", "outcome"], registry=self.registry
        )
        self._outbox_pending = Gauge(
            "wb_outbox_pending", "Pushes waiting in the outbox (due now or later)", registry=self.registry
        )
        self._outbox_oldest = Gauge(
            "wb_outbox_oldest_due_seconds",
            "How long the oldest push that is due has waited (0: none due)",
            registry=self.registry,
        )
        self._quota_until = Gauge(
            "wb_notify_template_quota_stopped_until",
            "Unix time template sends resume after the daily quota (45009) stopped them; 0 when not stopped",
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self._requests.labels(route, method, str(status)).inc()
        self._latency.labels(route).observe(seconds)

    def count_sms(self, provider: str, outcome: str) -> None:
        self._sms.labels(provider, outcome).inc()

    def set_outbox(self, pending: int, oldest_due_seconds: float, quota_until: float) -> None:
        """What the outbox looks like now (read from the database when /metrics is scraped)."""
        self._outbox_pending.set(pending)
        self._outbox_oldest.set(oldest_due_seconds)
        self._quota_until.set(quota_until)

    def render(self) -> bytes:
        return generate_latest(self.registry)
