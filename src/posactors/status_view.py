""" "Am I protected?": one snapshot of the service for the live view and the status page.

:func:`position_row` and :func:`build_snapshot` are pure: states, the
supervisor's status and the recent events in, plain rows out (Decimals kept,
nothing formatted), so both views render the same facts and tests need no
engine. :func:`collect` is the shell that reads a running engine.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from posactors.approvals import approval_rows
from posactors.model import HUNDRED
from posactors.runtime.messages import ExitEvent
from posactors.state import PositionState

if TYPE_CHECKING:
    from posactors.runtime.engine import Engine

RECENT = 50


def _pct(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if not whole else part / whole * HUNDRED


def position_row(s: PositionState) -> dict[str, Any]:
    """One position as the views show it; ``distance_pct``: how far the price is above
    its stop (below, for a short), in percent of the price; None with no stop or price."""
    sign, last, stop = s.side.sign, s.last_price, s.effective_stop
    held = s.protective
    broker_stop = None
    if held is not None and not held.cancel_requested:
        broker_stop = held.intent.stop_price
    return {
        "position_id": s.position_id,
        "symbol": s.symbol,
        "side": s.side.value,
        "qty": s.qty,
        "entry": s.entry_price,
        "last": last,
        "pnl_pct": None if last is None else _pct(sign * (last - s.entry_price), s.entry_price),
        "pnl": None if last is None else sign * (last - s.entry_price) * s.qty,
        "stop": stop,
        "rule": None if s.stop_source is None else s.stop_source.value,
        "distance_pct": None if stop is None or last is None else _pct(sign * (last - stop), last),
        "broker_stop": broker_stop,
        "exiting": s.pending is not None,
        "approval": s.approval is not None and not s.approval.approved,
        "breaker_open": s.breaker.open_until is not None,
    }


def _nearest_first(row: dict[str, Any]) -> tuple:
    d = row["distance_pct"]
    return (d is None, d if d is not None else 0, row["symbol"])


class EventFeed:
    """An engine listener keeping the recent exits and alerts for the views (thread-safe)."""

    def __init__(self, keep: int = RECENT) -> None:
        self._lock = threading.Lock()
        self.exits: deque[dict[str, Any]] = deque(maxlen=keep)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=keep)

    def __call__(self, event: ExitEvent) -> None:
        d = event.detail
        if event.kind == "filled":
            fill = d["fill"]
            row = {
                "time": fill.time,
                "symbol": event.symbol,
                "side": fill.intent.side.value,
                "qty": fill.qty,
                "price": fill.price,
                "reason": str(fill.intent.reason),
                "pnl": fill.realized_pnl,
            }
            with self._lock:
                self.exits.appendleft(row)
            return
        text = {
            "failed": lambda: f"exit refused: {d.get('reason')}",
            "alert": lambda: "kill switch tripped" if d.get("kill_switch") else d.get("message"),
            "approval_withdrawn": lambda: f"take-profit request withdrawn ({d.get('why')})",
        }.get(event.kind)
        if text is not None:
            with self._lock:
                self.alerts.appendleft({"symbol": event.symbol, "kind": event.kind, "text": text()})

    def recent(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with self._lock:
            return list(self.exits), list(self.alerts)


def build_snapshot(
    now: datetime,
    status: Mapping[str, Any],
    states: Iterable[PositionState],
    requests: Iterable[str] = (),
    exits: list[dict[str, Any]] | None = None,
    alerts: list[dict[str, Any]] | None = None,
    counters: Mapping[str, int] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Everything the views show, nearest-to-stop first. ``status``: ``Engine.status()``."""
    states = list(states)
    counters = dict(counters or {})
    scope = status.get("scope") or {}
    rows = sorted((position_row(s) for s in states), key=_nearest_first)
    return {
        "now": now,
        "mode": status.get("mode") or ("DRY RUN" if dry_run else "MODE ?"),
        "account": status.get("account"),
        "positions": rows,
        "open_pnl": sum((r["pnl"] for r in rows if r["pnl"] is not None), Decimal(0)),
        "unprotected": [
            r["symbol"] for r in rows if r["stop"] is None and r["broker_stop"] is None
        ],
        "in_scope": scope.get("in", len(rows)),
        "out_of_scope": scope.get("out", 0),
        "approvals": approval_rows(states, requests, now),
        "exits": exits or [],
        "alerts": alerts or [],
        "parked": dict(status.get("parked") or {}),
        "kill_switch": status.get("kill_switch"),
        "errors": counters.get("errors", 0) + counters.get("actor_failures", 0),
        "exits_filled": sum(v for k, v in counters.items() if k.startswith("exits_")),
        "orders_sent": counters.get("orders_sent", 0),
    }


def collect(engine: Engine, feed: EventFeed | None = None) -> dict[str, Any]:
    """The snapshot of a running engine (asks each position actor for its state)."""
    status = engine.status()
    states = engine.positions().values()
    requests = engine.store.approvals() if engine.store is not None else []
    exits, alerts = feed.recent() if feed is not None else ([], [])
    return build_snapshot(
        engine.clock.now(),
        status,
        states,
        requests,
        exits,
        alerts,
        engine.metrics.snapshot(),
        engine.config.dry_run,
    )
