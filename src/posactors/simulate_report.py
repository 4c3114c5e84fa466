"""``posactors simulate``'s summary and progress: this run's figures and all runs', each said.

A run on an existing ``--state`` continues an account that earlier runs (perhaps killed)
began, so each figure is either this run's or the account's since it was opened, and the
text says which. Broker-held stops are named as such, not as "open intents". When nothing
exited, :func:`no_exit_reasons` says why as far as the configuration tells.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from posactors.output import fmt
from posactors.policy import Config
from posactors.store import StateStore, StoreError

BROKER_STOP_MARK = "-ps-"  # protective stops: pa-<hash>-ps-<attempt> (model.protective_order_id)


@dataclass
class AccountFigures:
    """What the state store says about the account so far (all runs)."""

    exits: Counter[str] = field(default_factory=Counter)
    closed_positions: int = 0
    realized_pnl: Decimal = Decimal(0)
    orders: int = 0

    @classmethod
    def read(cls, store: StateStore, orders: int) -> AccountFigures:
        figures = cls(orders=orders)
        for record in store.history():
            figures.closed_positions += 1
            figures.realized_pnl += Decimal(str(record.get("realized_pnl") or 0))
            figures.exits.update(record.get("exit_reasons") or [])
        for state in store.snapshots().values():
            figures.realized_pnl += state.realized_pnl
            figures.exits.update(state.exits)
        return figures


def figures_before(state_dir, orders: int) -> AccountFigures:
    """The account's figures before this run (nothing for a new state)."""
    if not (state_dir / "data.mdb").exists():
        return AccountFigures(orders=orders)
    try:
        with StateStore(state_dir, readonly=True) as store:
            return AccountFigures.read(store, orders)
    except StoreError:  # the engine refuses it with its own message when it starts
        return AccountFigures(orders=orders)


def _is_broker_stop(entry: dict[str, Any]) -> bool:
    intent = entry.get("intent") or {}
    return BROKER_STOP_MARK in str(intent.get("client_order_id", ""))


def build_summary(run: dict[str, Any], before: AccountFigures, state_dir) -> dict[str, Any]:
    """The summary: the documented top-level keys, then ``this_run`` and ``all_runs``.

    ``run`` carries what the driver measured: engine, sim, observer, open_states, status,
    start, end, account_start, elapsed, resumed, config.
    """
    engine, sim, observer = run["engine"], run["sim"], run["observer"]
    counters = engine.metrics.snapshot()
    with StateStore(state_dir, readonly=True) as store:
        open_intents = store.open_intents()
        after = AccountFigures.read(store, len(sim.order_log()))
    stops = sum(_is_broker_stop(e) for e in open_intents)
    p50, p99 = engine.metrics.percentile(50), engine.metrics.percentile(99)
    open_states = run["open_states"]
    this_exits = dict(sorted(observer.exits.items()))
    summary: dict[str, Any] = {
        "positions": len(open_states) + after.closed_positions,
        "open_positions": len(open_states),
        "closed_positions": after.closed_positions,
        "parked": run["status"].get("parked", {}),
        "virtual_seconds": (run["end"] - run["start"]).total_seconds(),
        "wall_seconds": round(run["elapsed"], 3),
        "cycles": counters.get("cycles", 0),
        "quote_requests": counters.get("quote_requests", 0),
        "quotes": counters.get("quotes", 0),
        "bad_quotes": sum(v for k, v in counters.items() if k.startswith("bad_quotes_")),
        "exits": this_exits,
        "orders": after.orders,
        "duplicate_orders": sim.duplicate_exits(),
        "open_intents": len(open_intents),
        "working_broker_stops": stops,
        "exits_in_flight": len(open_intents) - stops,
        "errors": counters.get("errors", 0) + counters.get("actor_failures", 0),
        "rejected": counters.get("orders_rejected", 0),
        "retries": counters.get("retries", 0),
        "unknown_outcomes": counters.get("unknown_outcomes", 0),
        "actor_restarts": counters.get("actor_restarts", 0),
        "store_commits": counters.get("store_commits", 0),
        "realized_pnl": after.realized_pnl,
        "quote_to_order_ms_p50": None if p50 is None else round(p50, 3),
        "quote_to_order_ms_p99": None if p99 is None else round(p99, 3),
        "resumed": run["resumed"],
        "virtual_start": run["start"].isoformat(),
        "virtual_end": run["end"].isoformat(),
        "this_run": {
            "virtual_seconds": (run["end"] - run["start"]).total_seconds(),
            "exits": this_exits,
            "orders": after.orders - before.orders,
            "closed_positions": after.closed_positions - before.closed_positions,
            "realized_pnl": after.realized_pnl - before.realized_pnl,
        },
        "all_runs": {
            "virtual_seconds": (run["end"] - run["account_start"]).total_seconds(),
            "exits": dict(sorted(after.exits.items())),
            "orders": after.orders,
            "closed_positions": after.closed_positions,
            "realized_pnl": after.realized_pnl,
        },
    }
    if not after.exits:
        summary["no_exit_reasons"] = no_exit_reasons(
            run["config"], run["account_start"], run["end"]
        )
    return summary


def no_exit_reasons(config: Config, start: datetime, end: datetime) -> list[str]:
    """Why a run may have closed nothing, from the policy and the virtual time it covered."""
    policy = config.exits
    reasons: list[str] = []
    if not policy.order_rules():
        return ["no exit rule is configured (give --config FILE, e.g. config/default.yaml)"]
    covered = f"{start:%H:%M}-{end:%H:%M} on {start:%a %d %b}" if start.date() == end.date() else ""
    for tier in policy.tiers:
        why = []
        if tier.window is not None and covered:
            lo, hi = tier.window.start, tier.window.end
            if not (start.time() <= hi and end.time() >= lo):
                why.append(f"its window {lo:%H:%M}-{hi:%H:%M} was never reached ({covered})")
        if tier.trading_days.min > 1 and start.date() == end.date():
            why.append(f"it waits for trading day {tier.trading_days.min}; the run stayed in day 1")
        if why:
            reasons.append(f"tier {tier.name}: " + "; ".join(why))
    levels = []
    if policy.stop_loss:
        levels.append(f"a loss of {fmt(policy.stop_loss.pct)}%")
    if policy.take_profit:
        levels.append(f"a gain of {fmt(policy.take_profit.pct)}%")
    if policy.trailing:
        levels.append(f"a trailing stop (from +{fmt(policy.trailing.activate_gain_pct)}%)")
    if policy.staircase:
        levels.append(f"a staircase step (from +{fmt(policy.staircase.steps[0].at_gain_pct)}%)")
    if policy.max_hold:
        levels.append("the holding time limit")
    if levels:
        reasons.append("no position reached " + ", or ".join(levels) + " in the time simulated")
    reasons.append("a longer --duration (virtual seconds) gives prices more time to move")
    return reasons


def render_text(summary: dict[str, Any], state_label: str) -> str:
    """The summary for a person: labelled columns when the run continued an account."""
    s, this, every = summary, summary["this_run"], summary["all_runs"]
    start, end = (
        datetime.fromisoformat(s["virtual_start"]),
        datetime.fromisoformat(s["virtual_end"]),
    )
    lines = [
        f"simulated {start:%a %d %b %Y %H:%M:%S} -> {end:%H:%M:%S} exchange time "
        f"({fmt(s['virtual_seconds'])} virtual s in {s['wall_seconds']} s)"
    ]
    if s["resumed"]:
        lines.append(
            f"continued the account in {state_label}: it has now run "
            f"{fmt(every['virtual_seconds'])} virtual s in all (--duration counts this run's)"
        )
    header = ("this run", "all runs") if s["resumed"] else ("",)
    rows: list[tuple[str, ...]] = []
    reasons = sorted(set(this["exits"]) | set(every["exits"]))
    total = (sum(this["exits"].values()), sum(every["exits"].values()))
    rows.append(("exits (orders filled)", *map(str, total[: len(header)])))
    for reason in reasons:
        values = (this["exits"].get(reason, 0), every["exits"].get(reason, 0))
        rows.append((f"  {reason}", *map(str, values[: len(header)])))
    for title, key in (
        ("orders sent (stops too)", "orders"),
        ("positions closed", "closed_positions"),
        ("realized P&L", "realized_pnl"),
    ):
        rows.append((title, *(fmt(d[key]) for d in (this, every)[: len(header)])))
    width = max(len(r[0]) for r in rows) + 2
    lines.append("")
    if s["resumed"]:
        lines.append(" " * width + "".join(f"{h:>12}" for h in header))
    lines += [f"{r[0]:{width}}" + "".join(f"{v:>12}" for v in r[1:]) for r in rows]
    lines += [
        "",
        f"positions open {s['open_positions']} of {s['positions']}; exit orders in flight "
        f"{s['exits_in_flight']}"
        + (
            f"; working broker stops {s['working_broker_stops']} (stop_loss.on_broker: a stop "
            "order held at the broker for each open position)"
            if s["working_broker_stops"]
            else ""
        ),
        f"duplicate orders {s['duplicate_orders']}; errors {s['errors']}; rejected "
        f"{s['rejected']}; actor restarts {s['actor_restarts']}; parked {len(s['parked'])}",
        f"quotes {s['quotes']} (bad {s['bad_quotes']}); quote-to-order ms p50 "
        f"{fmt(s['quote_to_order_ms_p50'])} p99 {fmt(s['quote_to_order_ms_p99'])}",
    ]
    if s.get("no_exit_reasons"):
        lines += ["", "why nothing exited:"] + [f"  - {r}" for r in s["no_exit_reasons"]]
    return "\n".join(lines)


class LiveDisplay:
    """A progress bar towards ``--duration`` and a live table (only on a terminal)."""

    def __init__(self, engine, observer, start: datetime, end: datetime) -> None:
        from rich.console import Group
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.engine, self.observer, self.start = engine, observer, start
        self.progress = Progress(
            TextColumn("[bold]simulate[/] {task.fields[now]}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} virtual s"),
            TimeRemainingColumn(),
        )
        total = max((end - start).total_seconds(), 1.0)
        self.task = self.progress.add_task("run", total=total, now=f"{start:%H:%M:%S}")
        self._group = Group
        self.live = Live(auto_refresh=False, transient=False)
        self.live.start()
        self._last = 0.0

    def update(self, now: datetime, force: bool = False) -> None:
        if not force and time.perf_counter() - self._last < 0.25:
            return
        self._last = time.perf_counter()
        from rich.table import Table

        done = (now - self.start) / timedelta(seconds=1)
        self.progress.update(self.task, completed=done, now=f"{now:%H:%M:%S}")
        c = self.engine.metrics.snapshot()
        table = Table()
        for name in ("quotes", "exit decisions", "orders sent", "exits", "errors", "restarts"):
            table.add_column(name, justify="right")
        table.add_column("recent exits")
        table.add_row(
            str(c.get("quotes", 0)),
            str(c.get("intents", 0)),
            str(c.get("orders_sent", 0)),
            str(sum(self.observer.exits.values())),
            str(c.get("errors", 0) + c.get("actor_failures", 0)),
            str(c.get("actor_restarts", 0)),
            "\n".join(self.observer.recent[-5:]),
        )
        self.live.update(self._group(self.progress, table), refresh=True)

    def close(self, now: datetime) -> None:
        self.update(now, force=True)  # the bar ends where the run ended
        self.live.stop()
