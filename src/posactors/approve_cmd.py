"""``posactors approve``: list the take-profits waiting for a person, approve or reject one.

    posactors approve --state DIR --list          # symbol, gain, price, since when
    posactors approve --state DIR AAPL            # by symbol, or by approval id
    posactors approve --state DIR AAPL --reject

The answer is written to the state store (its own durable transaction); the
running service applies it within a second. Reads are read-only, so this works
beside a running service or on a stopped one's state.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from posactors.approvals import approval_rows, find_pending
from posactors.output import duration, emit_json, fmt
from posactors.store import StateStore, StoreError

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def render_rows(rows: list[dict]) -> str:
    """The pending requests as a small table (oldest first)."""
    if not rows:
        return "no take-profit is waiting for approval"
    head = f"{'SYMBOL':8} {'QTY':>8} {'ENTRY':>10} {'PRICE':>10} {'GAIN%':>7}  "
    head += f"{'SINCE (UTC)':19} {'WAITED':>8}  {'STATUS':9} ID"
    lines = [head]
    for r in rows:
        since = r["since"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{r['symbol']:8} {fmt(r['qty']):>8} {fmt(r['entry_price']):>10} "
            f"{fmt(r['price']):>10} {r['gain_pct']:>+7.2f}  {since:19} "
            f"{duration(r['waiting_min'] * 60):>8}  {r['status']:9} {r['approval_id']}"
        )
    return "\n".join(lines)


def approve_command(
    state_dir: Path,
    key: str | None,
    *,
    list_only: bool = False,
    reject: bool = False,
    as_json: bool = False,
    now: datetime | None = None,
) -> int:
    """List (``list_only``) or answer the request ``key`` (an approval id or a symbol)."""
    if not state_dir.is_dir():
        print(f"approve: no state directory at {state_dir}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not list_only and not key:
        print("approve: give an approval id or a symbol, or --list", file=sys.stderr)
        return EXIT_BAD_INPUT
    now = now or datetime.now(UTC)
    try:
        with StateStore(state_dir, readonly=True) as store:
            states = list(store.snapshots().values())
            requests = store.approval_requests()
        if list_only:
            rows = approval_rows(states, requests, now)
            if as_json:
                for row in rows:
                    emit_json({**row, "since": row["since"].isoformat()})
            else:
                print(render_rows(rows))
            return EXIT_OK
        assert key is not None
        try:
            state = find_pending(states, key)
        except LookupError as exc:
            print(f"approve: {exc.args[0]}", file=sys.stderr)
            return EXIT_BAD_INPUT
        approval = state.approval
        assert approval is not None
        what = f"{state.symbol} {approval.reason} at {fmt(approval.trigger_price)}"
        verb = "reject" if reject else "approv"
        asked = requests.get(approval.approval_id)
        if isinstance(asked, dict) and bool(asked.get("reject")) == reject:
            print(f"{verb}al of {approval.approval_id} ({what}) was already recorded")
            return EXIT_OK
        if reject and approval.rejected:
            print(f"{approval.approval_id} ({what}) is already rejected")
            return EXIT_OK
        # a service may run on it: only the service upgrades a store (its own writes keep
        # the indexes)
        with StateStore(state_dir, upgrade=False) as store:
            store.request_approval(approval.approval_id, reject=reject)
    except StoreError as exc:
        print(f"approve: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    then = "not sent" if reject else "sent by the service if the position is still open"
    print(f"{verb}ed {approval.approval_id} ({what}): the exit is {then}")
    return EXIT_OK
