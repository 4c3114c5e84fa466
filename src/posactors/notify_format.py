"""What a notification says: engine events as one-line notices, a burst as one message (pure).

:func:`notice_from_event` turns an engine :class:`ExitEvent` into a
:class:`Notice`; :func:`notice_from_log` does the same for the few log events
that have no ExitEvent (a position parked, a breaker tripped). :func:`compose`
makes a batch of notices one message: the most urgent first, at most
``max_lines`` lines, the rest counted by kind, so 500 stops filled in a minute
read as one message, not 500.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posactors.output import fmt
from posactors.runtime.messages import ExitEvent

# most urgent first: the order of the lines in a message
URGENCY = (
    "kill_switch",
    "alert",
    "breaker_tripped",
    "position_parked",
    "exit_failed",
    "approval_requested",
    "approval_withdrawn",
    "exit_filled",
    "service_started",
    "service_stopped",
)
FAILURES = frozenset(URGENCY[:5])
LABELS = {
    "kill_switch": "kill switch",
    "alert": "alert",
    "breaker_tripped": "breaker tripped",
    "position_parked": "parked",
    "exit_failed": "exit failed",
    "approval_requested": "approval requested",
    "approval_withdrawn": "approval withdrawn",
    "exit_filled": "exit filled",
    "service_started": "service started",
    "service_stopped": "service stopped",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing a trader is told: its event name and a one-line text."""

    event: str
    text: str


def _pct(value: Decimal) -> str:
    return f"{value:+.2f}%"


def notice_from_event(event: ExitEvent) -> Notice | None:
    """The notice for an engine event, or None (decisions and closes are not notified)."""
    d, sym = event.detail, event.symbol
    if event.kind == "approval":
        price, entry = d.get("price"), d.get("entry")
        gain = ""
        if price is not None and entry:
            sign = -1 if d.get("side") == "short" else 1
            gain = f" {_pct(sign * (price - entry) / entry * 100)} at {fmt(price)}"
        return Notice(
            "approval_requested",
            f"{sym}: take-profit waits for approval{gain} "
            f"(posactors approve {sym}, or the status page)",
        )
    if event.kind == "approval_withdrawn":
        why = {"expired": "nobody answered in time", "position_gone": "the position is gone"}
        return Notice(
            "approval_withdrawn",
            f"{sym}: take-profit request withdrawn ({why.get(d.get('why'), d.get('why'))})",
        )
    if event.kind == "filled":
        fill = d["fill"]
        return Notice(
            "exit_filled",
            f"{sym}: {fill.intent.side.value} {fmt(fill.qty)} @ {fmt(fill.price)} "
            f"({fill.intent.reason}), P&L {fmt(round(fill.realized_pnl, 2))}",
        )
    if event.kind == "failed":
        return Notice("exit_failed", f"{sym}: exit refused by the broker: {d.get('reason')}")
    if event.kind == "alert":
        kill = d.get("kill_switch")
        if kill:
            return Notice(
                "kill_switch",
                f"kill switch tripped: equity {kill.get('equity')} is "
                f"{kill.get('drawdown_pct')}% below its peak {kill.get('peak')}",
            )
        return Notice("alert", f"{sym}: {d.get('message')}")
    return None


def notice_from_log(name: str, fields: Mapping[str, Any]) -> Notice | None:
    """The notice for a log event that no ExitEvent carries, or None."""
    if name == "actor_parked":
        return Notice(
            "position_parked",
            f"{fields.get('position')}: parked after repeated failures "
            f"(its broker stop is kept; restart to retry): {fields.get('error')}",
        )
    if name == "broker_outage":
        return Notice(
            "breaker_tripped",
            f"broker unreachable ({fields.get('in_a_row')} failures in a row): "
            "exits wait and are retried",
        )
    if name == "position_breaker_tripped":
        return Notice(
            "breaker_tripped",
            f"{fields.get('symbol')}: its exits paused after repeated errors "
            f"(until {fields.get('until')}): {fields.get('error')}",
        )
    if name == "data_outage":
        return Notice("breaker_tripped", "market data unreachable: no new quotes")
    return None


def compose(notices: Sequence[Notice], max_lines: int) -> tuple[str, str, bool]:
    """``(title, body, failure)`` of one message for a batch of notices."""
    ordered = sorted(notices, key=lambda n: URGENCY.index(n.event))
    counts = Counter(n.event for n in ordered)
    kinds = sorted(counts, key=URGENCY.index)
    if len(ordered) == 1:
        title = f"posactors: {LABELS[ordered[0].event]}"
    else:
        title = "posactors: " + ", ".join(f"{counts[k]} {LABELS[k]}" for k in kinds)
    lines = [n.text for n in ordered[:max_lines]]
    rest = Counter(n.event for n in ordered[max_lines:])
    if rest:
        more = ", ".join(f"{rest[k]} {LABELS[k]}" for k in sorted(rest, key=URGENCY.index))
        lines.append(f"... and {sum(rest.values())} more ({more})")
    return title, "\n".join(lines), any(k in FAILURES for k in kinds)
