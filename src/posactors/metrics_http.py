"""The optional Prometheus endpoint of ``posactors run`` (``--metrics-port``).

Serves the engine's counters (exits by reason, orders, errors, breaker trips,
retries, ...), the number of live and parked position actors, and the
quote-to-order latency percentiles, read at scrape time: nothing is copied or
kept twice. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from posactors.runtime.engine import Engine


class EngineCollector(Collector):
    """Reads an :class:`Engine`'s metrics on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        counters = self.engine.metrics.snapshot()
        exits = CounterMetricFamily(
            "posactors_exits", "Exit fills by reason kind", labels=["reason"]
        )
        events = CounterMetricFamily(
            "posactors_events", "Engine counters (orders, errors, retries, ...)", labels=["name"]
        )
        for name, value in sorted(counters.items()):
            if name.startswith("exits_"):
                exits.add_metric([name[len("exits_") :]], value)
            else:
                events.add_metric([name], value)
        yield exits
        yield events
        latency = GaugeMetricFamily(
            "posactors_quote_to_order_ms", "Quote-to-order latency", labels=["quantile"]
        )
        for q in (50, 99):
            value = self.engine.metrics.percentile(q)
            if value is not None:
                latency.add_metric([f"0.{q}"], value)
        yield latency
        if self.engine.failed is None and self.engine.ctx is not None:
            status = self.engine.status()
            yield GaugeMetricFamily(
                "posactors_positions", "Live position actors", status["positions"]
            )
            yield GaugeMetricFamily("posactors_parked", "Parked positions", len(status["parked"]))
            yield GaugeMetricFamily(
                "posactors_kill_switch",
                "1 when the kill switch has tripped",
                1 if status.get("kill_switch") else 0,
            )


def serve_metrics(engine: Engine, port: int, host: str = "127.0.0.1") -> None:
    """Start the endpoint on a daemon thread (http://HOST:PORT/metrics)."""
    REGISTRY.register(EngineCollector(engine))
    start_http_server(port, addr=host)
