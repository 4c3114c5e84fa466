"""The live view and the stop summary, as pure functions of a status snapshot."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from conftest import D, make_policy, make_state, ny, quote
from posactors.live_view import render, summary
from posactors.model import ExitIntent, ExitKind, ExitReason, OrderSide, OrderType
from posactors.rules import on_quote
from posactors.state import PendingExit, evolve
from posactors.status_view import EventFeed, build_snapshot, position_row
from test_notify import fill_event

T0 = ny(2024, 3, 12, 10, 0)


def priced(symbol, entry, last, stop=None, rule=ExitKind.STOP_LOSS, held=None):
    s = make_state(entry=entry, symbol=symbol)
    s = evolve(s, last_price=D(last), effective_stop=None if stop is None else D(stop))
    s = evolve(s, stop_source=rule if stop is not None else None)
    if held is not None:
        intent = ExitIntent(
            s.position_id, symbol, OrderSide.SELL, s.qty, ExitReason(rule), OrderType.MARKET,
            "gtc", D(held), None, False, 1, T0, "pa-x-ps-1", stop_price=D(held),
        )  # fmt: skip
        s = evolve(s, protective=PendingExit(intent))
    return s


def snapshot(status=None, **kw):
    tp = make_policy(take_profit={"pct": 10, "require_approval": True})
    aapl = on_quote(make_state(symbol="AAPL"), tp, quote("111", T0), T0, None, 10).state
    aapl = evolve(aapl, effective_stop=D("105"), stop_source=ExitKind.TRAILING)
    states = [
        aapl,
        priced("MSFT", 400, 396, stop=380, held=380),
        priced("NVDA", 800, 851, stop=825.47, rule=ExitKind.TRAILING),
        priced("TSLA", 200, 201),  # no stop yet
    ]
    feed = EventFeed()
    feed(fill_event("AMD", "30", "189", "-330"))
    exits, alerts = feed.recent()
    status = status or {"positions": 4, "parked": {}, "mode": "PAPER", "scope": {"in": 4, "out": 2}}
    counters = {"exits_stop_loss": 1, "errors": 0}
    now = T0 + timedelta(minutes=3)
    return build_snapshot(now, status, states, (), exits, alerts, counters, **kw)


def text(renderable) -> str:
    console = Console(record=True, width=150, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_rows_say_how_far_each_position_is_from_its_stop():
    row = position_row(priced("MSFT", 400, 396, stop=380, held=380))
    assert row["pnl_pct"] == D(-1) and row["pnl"] == D(-400)
    assert round(row["distance_pct"], 2) == D("4.04") and row["broker_stop"] == D(380)
    assert row["rule"] == "stop_loss"


def test_the_view_answers_am_i_protected():
    out = text(render(snapshot(), url="http://127.0.0.1:8765/"))
    head = " ".join(out.splitlines()[:2])
    assert "PAPER" in head and "4 positions · 4 in scope · 2 out" in head
    assert "1 WITHOUT A STOP" in head and "1 awaiting approval" in head
    assert "page http://127.0.0.1:8765/" in head
    table = [line for line in out.splitlines() if "watched here" in line or "stop @" in line]
    assert [line.split()[0] for line in table] == ["NVDA", "MSFT", "AAPL", "TSLA"]  # nearest first
    nvda, msft, aapl, tsla = table
    assert "+6.38%" in nvda and "825.47" in nvda and "trailing" in nvda and "3.00%" in nvda
    assert "stop_loss" in msft and "4.04%" in msft and "stop @ 380.00" in msft
    assert "approval" in aapl and "watched here" in aapl
    assert "NONE" in tsla
    assert "AAPL   100 @ 111.00 +11.00%  waiting 3m 00s  posactors approve AAPL" in out
    assert "AMD    sell 30 @ 189.00 stop_loss  P&L -330.00" in out


def test_mode_and_kill_switch_stand_out():
    kill = {"at": "10:01", "equity": "90000", "peak": "100000", "drawdown_pct": "10"}
    status = {"positions": 4, "parked": {"X-1": "boom"}, "mode": "LIVE", "kill_switch": kill}
    out = text(render(snapshot(status)))
    assert " LIVE " in out.splitlines()[0] and "1 parked" in out.splitlines()[1]
    assert "KILL SWITCH tripped at 10:01: equity 90000 is 10% below its peak 100000" in out
    assert "X-1: parked: boom" in out
    assert "DRY RUN" in text(render(snapshot({"positions": 4, "parked": {}}, dry_run=True)))


def test_the_summary_when_it_stops():
    s = snapshot()
    assert summary(s, T0 - timedelta(hours=1), 0).splitlines() == [
        "posactors stopped after 1h 03m (PAPER, status 0)",
        "  exits filled: 1 (1 stop_loss), realized P&L -330.00",
        "  still open:   4 position(s), open P&L +5,900.00, 1 without a stop",
        "  waiting:      1 approval(s) AAPL",
        "  problems:     0 error(s), 0 parked, 0 alert(s)",
    ]
