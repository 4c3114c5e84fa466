"""A year of history in a state store, written fast (figure 5's ``recovery_s_N_year``).

:func:`add_year` adds to a store that already holds the open positions (``prepare_state``)
what a year of trading leaves behind: ``entries`` finished journal entries (one closed
position in two is a protective stop cancelled, its exit filled), updated evenly over
the year before :data:`common.START`, and one history record per closed position (with
its ``closed`` index entry, as the engine writes them). Everything is encoded from one
real entry and one real history record used as templates, and put with LMDB's bulk
append (keys in order) in one transaction per database: about a million entries in
seconds rather than minutes. The engine never writes like this; only the data is real.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import lmdb
import orjson
from common import START

from posactors.model import ExitIntent, ExitKind, ExitReason, OrderSide, OrderType, Position, Side
from posactors.runtime.position import history_record
from posactors.state import open_position
from posactors.store import StateStore

YEAR = timedelta(days=365)
MARK = "\x00"  # placeholders in the templates, replaced per record


def _templates() -> tuple[bytes, bytes]:
    """(a finished journal entry, a history record), with placeholders where records differ."""
    intent = ExitIntent(
        position_id=MARK + "pid",
        symbol="S00000",
        side=OrderSide.SELL,
        qty=Decimal(100),
        reason=ExitReason(ExitKind.TRAILING),
        order_type=OrderType.MARKET,
        time_in_force="day",
        trigger_price=Decimal("104.50"),
        limit_price=None,
        extended_hours=False,
        attempt=1,
        decided_at=START,
        client_order_id=MARK + "coid",
    )
    op = StateStore.put_intent_op(intent, "filled", filled_qty="100", order_id=MARK + "oid")
    entry = {**op[2], "updated_at": MARK + "upd", "status": MARK + "status"}
    entry["intent"] = {**entry["intent"], "decided_at": MARK + "upd"}
    state = open_position(Position("S00000", Side.LONG, Decimal(100), Decimal(100), START))
    record = {**history_record(state, START), "position_id": MARK + "pid"}
    record |= {"closed_at": MARK + "upd", "opened_at": MARK + "opened"}
    return _template(entry), _template(record)


def _template(value: dict[str, Any]) -> bytes:
    """``value`` encoded, each placeholder a ``%(name)s`` for bytes formatting."""
    raw = orjson.dumps(value).replace(b"%", b"%%")
    for name in ("pid", "coid", "oid", "upd", "status", "opened"):
        raw = raw.replace(f"\\u0000{name}".encode(), f"%({name})s".encode())
    return raw


def add_year(state_dir: Path, entries: int) -> dict[str, Any]:
    """Add a year of finished intents and closed positions; returns what it wrote."""
    started = time.perf_counter()
    journal_t, history_t = _templates()
    closed = entries // 2
    first = int((START - YEAR).timestamp())
    gap = YEAR.total_seconds() / closed
    days: dict[int, bytes] = {}
    journal, history, index = [], [], []
    for i in range(closed):
        day, second = divmod(first + int(i * gap), 86400)
        upd = b"%sT%02d:%02d:%02d+00:00" % (
            days.get(day) or days.setdefault(day, _date(day)),
            second // 3600,
            second // 60 % 60,
            second % 60,
        )
        opened = (days.get(day - 3) or days.setdefault(day - 3, _date(day - 3))) + upd[10:]
        pid = b"Y%07d-S%05d" % (i, i % 5000)
        for k, status, code in ((0, b"canceled", b"ps"), (1, b"filled", b"tr")):
            coid = b"pa-%016x-%s-1" % (2 * i + k, code)
            oid = b"o-%d" % (2 * i + k)
            fields = {b"pid": pid, b"coid": coid, b"oid": oid, b"upd": upd, b"status": status}
            journal.append((coid, journal_t % fields))
        key = upd + b"|" + pid
        history.append((key, history_t % {b"pid": pid, b"opened": opened, b"upd": upd}))
        index.append((pid, b'"' + key + b'"'))
    env = lmdb.open(str(state_dir), max_dbs=16, map_size=16 << 30, sync=False)
    try:
        with env.begin(write=True) as txn:
            for name, items in (("journal", journal), ("history", history), ("closed", index)):
                db = env.open_db(name.encode(), txn=txn, create=False)
                with txn.cursor(db=db) as cursor:
                    cursor.putmulti(items, append=True)
        env.sync(True)
    finally:
        env.close()
    return {
        "journal": len(journal),
        "history": len(history),
        "seconds": time.perf_counter() - started,
        "bytes": (state_dir / "data.mdb").stat().st_size,
    }


def _date(day: int) -> bytes:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d").encode()
