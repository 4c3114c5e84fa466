"""The live view of ``posactors run`` on a terminal: "am I protected?" at a glance.

:func:`render` draws a status snapshot (:mod:`posactors.status_view`) as rich
tables: the mode (PAPER / LIVE / DRY RUN), the counts, the positions nearest
their stop (quantity, entry, last, P&L %, the effective stop and the rule that
set it, the distance to it, whether the broker holds it), the take-profits
awaiting approval, the recent exits, alerts and parked positions.
:func:`summary` is what is printed when the service stops. Both are pure
functions of the snapshot; :class:`LiveView` is the shell that redraws.
Logs stay JSON lines on stderr; this draws on stdout.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from posactors.output import duration, fmt

MODE_STYLE = {
    "LIVE": "bold white on red",
    "PAPER": "bold black on cyan",
    "DRY RUN": "bold black on yellow",
}


def _n(value: Any, places: int = 2) -> str:
    return "–" if value is None else f"{value:,.{places}f}"


def _signed(value: Any, suffix: str = "") -> Text:
    if value is None:
        return Text("–", style="dim")
    style = "green" if value > 0 else "red" if value < 0 else "dim"
    return Text(f"{value:+,.2f}{suffix}", style=style)


def _ago(then: datetime, now: datetime) -> str:
    return duration((now - then).total_seconds())


def _distance(d: Decimal | None) -> Text:
    if d is None:
        return Text("–", style="dim")
    style = "bold red" if d < 2 else "yellow" if d < 5 else "green"
    return Text(f"{d:.2f}%", style=style)


def header(s: dict[str, Any], url: str | None = None) -> Text:
    """Two lines: the mode, the time, whether every position has a stop, what waits for
    a person; then the counts."""
    mode = s["mode"]
    line = Text()
    line.append(" posactors ", style="bold")
    line.append(f" {mode} ", style=MODE_STYLE.get(mode, "bold reverse"))
    line.append(f"  {s['now'].strftime('%H:%M:%S %Z')}   ", style="dim")
    if s["unprotected"]:
        line.append(f"{len(s['unprotected'])} WITHOUT A STOP", style="bold red")
    else:
        line.append("every position has a stop", style="green")
    waiting = len(s["approvals"])
    line.append(f" · {waiting} awaiting approval", style="bold yellow" if waiting else "")
    if url:
        line.append(f"   page {url}", style="dim")
    line.append(f"\n {len(s['positions'])} positions · {s['in_scope']} in scope · ")
    line.append(f"{s['out_of_scope']} out · {s['exits_filled']} exits · ")
    line.append(f"{s['errors']} errors", style="bold red" if s["errors"] else "")
    line.append(" · ")
    line.append(f"{len(s['parked'])} parked", style="bold red" if s["parked"] else "")
    line.append(" · open P&L ")
    line.append(_signed(s["open_pnl"]))
    return line


def positions_table(s: dict[str, Any], rows: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, expand=False, title_justify="left", pad_edge=False)
    table.title = (
        f"Positions nearest their stop ({min(rows, len(s['positions']))} of {len(s['positions'])})"
    )
    for name in ("Symbol", "Qty", "Entry", "Last", "P&L %", "Stop", "Set by", "Distance", "Broker"):
        table.add_column(
            name, justify="left" if name in ("Symbol", "Set by", "Broker") else "right"
        )
    for p in s["positions"][:rows]:
        flags = " [yellow]approval[/]" if p["approval"] else ""
        flags += " [cyan]exiting[/]" if p["exiting"] else ""
        held = (
            Text(f"stop @ {_n(p['broker_stop'])}", style="green")
            if p["broker_stop"]
            else Text("watched here", style="dim")
        )
        table.add_row(
            f"[bold]{p['symbol']}[/]{' short' if p['side'] == 'short' else ''}{flags}",
            fmt(p["qty"]),
            _n(p["entry"]),
            _n(p["last"]),
            _signed(p["pnl_pct"], "%"),
            _n(p["stop"]) if p["stop"] is not None else Text("NONE", style="bold red"),
            p["rule"] or "–",
            _distance(p["distance_pct"]),
            held,
        )
    return table


def _lines(title: str, items: list[Text]) -> RenderableType:
    body = Text(f"{title}\n", style="bold")
    for item in items:
        body.append("  ")
        body.append(item)
        body.append("\n")
    return body


def render(s: dict[str, Any], url: str | None = None, rows: int = 15) -> RenderableType:
    """The whole view for one snapshot."""
    parts: list[RenderableType] = [header(s, url)]
    if s["kill_switch"]:
        k = s["kill_switch"]
        parts.append(
            Text(
                f" KILL SWITCH tripped at {k.get('at')}: equity {k.get('equity')} is "
                f"{k.get('drawdown_pct')}% below its peak {k.get('peak')} ",
                style="bold white on red",
            )
        )
    parts.append(positions_table(s, rows) if s["positions"] else Text("no open position", "dim"))
    if s["approvals"]:
        items = [
            Text.assemble(
                (f"{a['symbol']:6}", "bold"),
                f" {fmt(a['qty'])} @ {_n(a['price'])} ",
                _signed(a["gain_pct"], "%"),
                f"  waiting {_ago(a['since'], s['now'])}  ",
                (
                    a["status"] if a["status"] != "waiting" else f"posactors approve {a['symbol']}",
                    "dim",
                ),
            )
            for a in s["approvals"]
        ]
        parts.append(_lines("Awaiting approval", items))
    if s["exits"]:
        items = [
            Text.assemble(
                (e["time"].astimezone(s["now"].tzinfo).strftime("%H:%M:%S "), "dim"),
                (f"{e['symbol']:6}", "bold"),
                f" {e['side']} {fmt(e['qty'])} @ {_n(e['price'])} {e['reason']}  P&L ",
                _signed(e["pnl"]),
            )
            for e in s["exits"][:5]
        ]
        parts.append(_lines("Recent exits", items))
    problems = [Text(f"{pid}: parked: {why}", style="red") for pid, why in s["parked"].items()]
    problems += [
        Text(
            f"{a['symbol']}: {a['text']}",
            style="dim" if a["kind"] == "approval_withdrawn" else "red",
        )
        for a in s["alerts"][:5]
    ]
    if problems:
        parts.append(_lines("Alerts and parked", problems))
    return Group(*parts)


def summary(s: dict[str, Any], started: datetime, status: int = 0) -> str:
    """What is printed when the service stops."""
    ran = _ago(started, s["now"])
    reasons = Counter(e["reason"] for e in s["exits"])
    by_reason = ", ".join(f"{n} {r}" for r, n in reasons.most_common())
    realized = sum((e["pnl"] for e in s["exits"]), Decimal(0))
    lines = [
        f"posactors stopped after {ran} ({s['mode']}, status {status})",
        f"  exits filled: {s['exits_filled']}"
        + (f" ({by_reason})" if by_reason else "")
        + (f", realized P&L {realized:+,.2f}" if s["exits"] else ""),
        f"  still open:   {len(s['positions'])} position(s), open P&L {s['open_pnl']:+,.2f}"
        + (f", {len(s['unprotected'])} without a stop" if s["unprotected"] else ""),
        f"  waiting:      {len(s['approvals'])} approval(s)"
        + "".join(f" {a['symbol']}" for a in s["approvals"]),
        f"  problems:     {s['errors']} error(s), {len(s['parked'])} parked, "
        f"{len(s['alerts'])} alert(s)" + (", KILL SWITCH tripped" if s["kill_switch"] else ""),
    ]
    return "\n".join(lines)


class LiveView:
    """Redraws :func:`render` on a terminal; prints :func:`summary` when closed."""

    def __init__(self, snapshot: Any, url: str | None = None) -> None:
        from rich.live import Live

        self.snapshot = snapshot  # () -> dict: status_view.collect bound to the engine
        self.url = url
        self.last: dict[str, Any] | None = None
        self.started: datetime | None = None
        self.live = Live(auto_refresh=False)
        self.live.start()
        self.calls, self.every = 0, 1

    def update(self) -> None:
        """Redraw; with a large book, less often (reading it costs at most ~1/5 of the time)."""
        self.calls += 1
        if self.calls % self.every:
            return
        began = time.monotonic()
        try:
            self.last = self.snapshot()
        except Exception:  # the engine is stopping or failed: keep the last view
            return
        self.every = max(1, math.ceil((time.monotonic() - began) * 5))
        if self.started is None:
            self.started = self.last["now"]
        self.live.update(render(self.last, self.url), refresh=True)

    def close(self, status: int = 0) -> str | None:
        """Stop drawing; the summary (also printed) of the last snapshot."""
        self.calls, self.every = 0, 1
        self.update()
        self.live.stop()
        if self.last is None or self.started is None:
            return None
        text = summary(self.last, self.started, status)
        print(text)
        return text
