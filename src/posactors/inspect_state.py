"""``tools/inspect`` and ``posactors approve``: a person's view of the state store.

:func:`main` dumps every position actor's state from the LMDB of a running or
stopped service, read-only: it never creates or changes a file (LMDB registers
the reader in ``lock.mdb`` when one exists, as every reader must). :func:`approve_main`
records a person's approval for the service to apply.

Exit status: 0 success, 2 bad input (no state directory, a newer or corrupt store,
an unknown approval id).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from posactors.codec import intent_from_dict
from posactors.output import emit_json, fmt
from posactors.state import PositionState
from posactors.store import StateStore, StoreError

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def position_view(state: PositionState, requested: set[str]) -> dict[str, Any]:
    """One position as inspect shows it (JSON-ready apart from Decimals and datetimes)."""
    pending = state.pending
    approval = state.approval
    b = state.breaker
    return {
        "position_id": state.position_id,
        "symbol": state.symbol,
        "side": state.side.value,
        "qty": state.qty,
        "original_qty": state.original_qty,
        "broker_qty": state.broker_qty,  # as the broker last listed it
        "foreign_held": state.foreign_held,  # held by orders posactors did not make
        "entry_price": state.entry_price,
        "opened_at": state.opened_at,
        "effective_stop": state.effective_stop,
        "stop_source": None if state.stop_source is None else state.stop_source.value,
        "hwm": state.hwm,
        "last_price": state.last_price,
        "last_quote_at": state.last_quote_at,
        "tiers_done": sorted(state.tiers_done),
        "tier_attempts": dict(state.tier_attempts),
        "breaker": {
            "consecutive_errors": b.consecutive_errors,
            "open_until": b.open_until,
            "trips": b.trips,
            "last_error": b.last_error,
        },
        "pending_exit": None
        if pending is None
        else {
            "client_order_id": pending.intent.client_order_id,
            "reason": str(pending.intent.reason),
            "side": pending.intent.side.value,
            "qty": pending.intent.qty,
            "filled_qty": pending.filled_qty,
            "order_type": pending.intent.order_type.value,
            "limit_price": pending.intent.limit_price,
            "status": None if pending.status is None else pending.status.value,
            "cancel_requested": pending.cancel_requested,
        },
        "deferred_exit": None
        if state.deferred is None
        else {"reason": str(state.deferred), "qty": state.deferred_qty},
        "approval_pending": None
        if approval is None
        else {
            "approval_id": approval.approval_id,
            "reason": str(approval.reason),
            "trigger_price": approval.trigger_price,
            "requested_at": approval.requested_at,
            "approved": approval.approved,
            "approve_requested": approval.approval_id in requested,
        },
        "bad_quotes": state.bad_quotes,
        "sold_qty": state.sold_qty,
        "realized_pnl": state.realized_pnl,
        "exits": list(state.exits),
    }


def intent_view(entry: dict[str, Any]) -> dict[str, Any]:
    intent = intent_from_dict(entry["intent"])
    return {
        "client_order_id": intent.client_order_id,
        "symbol": intent.symbol,
        "position_id": intent.position_id,
        "reason": str(intent.reason),
        "side": intent.side.value,
        "qty": intent.qty,
        "status": entry.get("status"),
        "filled_qty": entry.get("filled_qty"),
        "order_id": entry.get("order_id"),
        "updated_at": entry.get("updated_at"),
        "note": entry.get("note"),
    }


def collect(state_dir: Path, symbols: Sequence[str] = ()) -> tuple[list[dict], dict[str, Any]]:
    """Every position view (filtered by symbol) and a summary; raises :class:`StoreError`."""
    wanted = {s.upper() for s in symbols}
    keep = (lambda symbol: symbol.upper() in wanted) if wanted else (lambda symbol: True)
    with StateStore(state_dir, readonly=True) as store:
        meta, snapshots, journal = store.meta(), store.snapshots(), store.open_intents()
        history, counters, requested = store.history(), store.counters(), set(store.approvals())
    states = sorted(snapshots.values(), key=lambda s: (s.symbol, s.opened_at, s.position_id))
    positions = [position_view(s, requested) for s in states if keep(s.symbol)]
    closed = [h for h in history if keep(str(h.get("symbol", "")))]
    summary = {
        "state_dir": str(state_dir),
        "schema_version": meta.get("schema_version"),
        "created_at": meta.get("created_at"),
        "writer": meta.get("writer"),
        "parked": meta.get("parked") or {},
        "kill_switch": meta.get("kill_switch"),
        "scope": meta.get("scope"),
        "positions": len(positions),
        "open_intents": [intent_view(e) for e in journal if keep(str(e.get("symbol", "")))],
        "approvals_requested": sorted(requested),
        "counters": counters,
        "closed_positions": len(closed),
        "closed_realized_pnl": sum(
            (Decimal(str(h.get("realized_pnl") or 0)) for h in closed), Decimal(0)
        ),
    }
    return positions, summary


def _when(value: Any) -> str:
    return (
        "-" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    )


def render_text(positions: list[dict], summary: dict[str, Any]) -> str:
    """A readable block per position, then intents, counters and history."""
    lines: list[str] = []
    for p in positions:
        stop = f"{fmt(p['effective_stop'])} ({p['stop_source'] or '-'})"
        lines.append(
            f"{p['symbol']} {p['side']} {fmt(p['qty'])}/{fmt(p['original_qty'])} "
            f"@ {fmt(p['entry_price'])}  {p['position_id']}"
        )
        lines.append(
            f"  stop {stop}  hwm {fmt(p['hwm'])}  last {fmt(p['last_price'])} "
            f"at {_when(p['last_quote_at'])}  opened {_when(p['opened_at'])}"
        )
        attempts = ", ".join(f"{k} {_when(v)}" for k, v in sorted(p["tier_attempts"].items()))
        lines.append(
            f"  tiers done: {', '.join(p['tiers_done']) or '-'}  last attempts: {attempts or '-'}"
        )
        b = p["breaker"]
        lines.append(
            f"  breaker: {b['consecutive_errors']} error(s) in a row, open until "
            f"{_when(b['open_until'])}, {b['trips']} trip(s), last error: {b['last_error'] or '-'}"
        )
        if (x := p["pending_exit"]) is not None:
            limit = "" if x["limit_price"] is None else f" at {fmt(x['limit_price'])}"
            lines.append(
                f"  pending exit: {x['client_order_id']} {x['reason']} {x['side']} {fmt(x['qty'])} "
                f"{x['order_type']}{limit}, filled {fmt(x['filled_qty'])}, "
                f"status {x['status'] or 'not yet acknowledged'}"
                + (", cancel requested" if x["cancel_requested"] else "")
            )
        if (d := p["deferred_exit"]) is not None:
            lines.append(
                f"  deferred exit: {d['reason']} qty {fmt(d['qty']) if d['qty'] else 'all'}"
            )
        if (a := p["approval_pending"]) is not None:
            state = (
                "approved"
                if a["approved"]
                else "approve requested"
                if a["approve_requested"]
                else "waiting"
            )
            lines.append(
                f"  approval: {a['approval_id']} {a['reason']} at {fmt(a['trigger_price'])} "
                f"since {_when(a['requested_at'])} ({state})"
            )
        lines.append(
            f"  bad quotes {p['bad_quotes']}  sold {fmt(p['sold_qty'])}  "
            f"realized P&L {fmt(p['realized_pnl'])}"
        )
    s = summary
    lines.append(f"{s['positions']} position(s) in {s['state_dir']} (schema {s['schema_version']})")
    for i in s["open_intents"]:
        lines.append(
            f"  open intent {i['client_order_id']} {i['symbol']} {i['reason']} {i['side']} "
            f"{fmt(i['qty'])} {i['status']} filled {i['filled_qty']}"
        )
    for pid, error in s["parked"].items():
        lines.append(f"  parked actor {pid}: {error}")
    if s.get("scope") and s["scope"].get("out"):
        out = ", ".join(s["scope"]["out_symbols"])
        lines.append(f"  out of scope (never touched): {out}")
    if s.get("kill_switch"):
        k = s["kill_switch"]
        lines.append(f"  KILL SWITCH tripped at {k['at']}: drawdown {k['drawdown_pct']}%")
    if s["counters"]:
        lines.append(
            "  counters: " + ", ".join(f"{k}={v}" for k, v in sorted(s["counters"].items()))
        )
    lines.append(
        f"history: {s['closed_positions']} closed, realized P&L {fmt(s['closed_realized_pnl'])}"
    )
    return "\n".join(lines)


def add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``posactors inspect`` and ``tools/inspect``."""
    parser.add_argument(
        "--state", required=True, metavar="DIR", help="the service's state directory"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per position, then a summary"
    )
    parser.add_argument("symbols", nargs="*", metavar="SYMBOL")


def inspect_command(args: argparse.Namespace) -> int:
    """Print every position (text, or JSON lines with ``--json``); 2 on a bad state."""
    state_dir = Path(args.state)
    if not state_dir.is_dir():
        print(f"inspect: no state directory at {state_dir}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        positions, summary = collect(state_dir, args.symbols)
    except StoreError as exc:
        print(f"inspect: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        for position in positions:
            emit_json(position)
        emit_json({"summary": summary})
    else:
        print(render_text(positions, summary))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``tools/inspect``: the same as ``posactors inspect`` (errors and pipes handled there)."""
    from posactors.cli import main as cli_main

    return cli_main(["inspect", *(sys.argv[1:] if argv is None else argv)])


def approve_main(state_dir: Path | str, approval_id: str) -> int:
    """Record a person's approval of a pending exit; the service sends it if still open.

    Refuses (status 2) an id that no position is waiting for.
    """
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        print(f"approve: no state directory at {state_dir}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        with StateStore(state_dir, readonly=True) as store:
            waiting = {
                s.approval.approval_id: s
                for s in store.snapshots().values()
                if s.approval is not None and not s.approval.approved
            }
            requested = set(store.approvals())
        state = waiting.get(approval_id)
        if state is None or state.approval is None:
            pending = ", ".join(sorted(waiting)) or "none"
            print(
                f"approve: no pending approval {approval_id}; pending: {pending}", file=sys.stderr
            )
            return EXIT_BAD_INPUT
        what = f"{state.symbol} {state.approval.reason} at {fmt(state.approval.trigger_price)}"
        if approval_id in requested:
            print(f"approval {approval_id} ({what}) was already requested; the service applies it")
            return EXIT_OK
        # a service may run on it: only the service upgrades a store (its own writes keep
        # the indexes)
        with StateStore(state_dir, upgrade=False) as store:
            store.request_approval(approval_id)
    except StoreError as exc:
        print(f"approve: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"approved {approval_id} ({what}): the service sends the exit if the position is still open"
    )
    return EXIT_OK
