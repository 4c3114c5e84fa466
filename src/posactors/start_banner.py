"""The words ``posactors run`` says at start, before the engine places anything.

:func:`start_banner` is pure: from the account, its positions and open orders (as the
broker listed them just now) and the config, it says the account, the mode (PAPER,
LIVE, DRY RUN), the equity, the positions in and out of ``scope``, and how many broker
stops the engine is about to place (in-scope positions whose policy keeps a stop at
the broker, ``stop_loss.on_broker``, that have no live stop of ours there and some
shares that others' open exit orders do not hold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from posactors.model import OrderRequest, OrderUpdate, Position, is_own_stop
from posactors.policy import Config
from posactors.rules.boundary import AccountView

OUT_OF_SCOPE_SHOWN = 5  # out-of-scope symbols named; the rest are counted


@dataclass(frozen=True)
class Banner:
    """What the service says at start; :meth:`text` for people, :meth:`fields` for the log."""

    account_number: str
    mode: str  # PAPER | LIVE | DRY RUN
    live: bool  # the live trading endpoint (real money), even in a dry run
    equity: Decimal | None
    in_scope: int
    out_of_scope: int
    out_of_scope_symbols: tuple[str, ...]  # the first few, sorted
    stops_to_place: int

    def fields(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        equity = "unknown" if self.equity is None else f"${self.equity:,.2f}"
        if self.mode == "DRY RUN":
            money = "live account, " if self.live else "paper account, "
            mode = f"DRY RUN ({money}nothing is sent)"
        elif self.live:
            mode = "LIVE trading (real money)"
        else:
            mode = "PAPER trading"
        out = ""
        if self.out_of_scope:
            more = self.out_of_scope - len(self.out_of_scope_symbols)
            names = ", ".join(self.out_of_scope_symbols) + (f", +{more} more" if more else "")
            out = f" ({names}: never touched)"
        verb = "would place" if self.mode == "DRY RUN" else "about to place"
        return "\n".join(
            (
                f"posactors: {mode}, account {self.account_number}, equity {equity}",
                f"  positions: {self.in_scope} in scope, {self.out_of_scope} out of scope{out}",
                f"  broker stops: {verb} {self.stops_to_place} (in-scope positions without one)",
            )
        )


def start_banner(
    account: Mapping[str, Any],
    positions: Sequence[Position],
    open_orders: Sequence[tuple[OrderRequest, OrderUpdate]],
    config: Config,
    *,
    live: bool,
) -> Banner:
    """The banner for ``account`` (``number``, ``equity``) and what the broker lists."""
    inside = [p for p in positions if config.scope.covers(p.symbol)]
    outside = sorted({p.symbol for p in positions} - {p.symbol for p in inside})
    stopped = {req.symbol for req, _ in open_orders if is_own_stop(req.client_order_id)}
    view = AccountView.listed(positions, open_orders)
    to_place = 0
    for position in inside:
        stop_loss = config.policy_for(position.symbol).stop_loss
        if stop_loss is None or not stop_loss.on_broker or position.symbol in stopped:
            continue
        if position.qty > view.foreign_held(position.symbol, position.side):
            to_place += 1  # others' orders holding every share leave no room for a stop
    equity = account.get("equity")
    return Banner(
        account_number=str(account.get("number")),
        mode="DRY RUN" if config.dry_run else "LIVE" if live else "PAPER",
        live=live,
        equity=None if equity is None else Decimal(equity),
        in_scope=len(inside),
        out_of_scope=len(positions) - len(inside),
        out_of_scope_symbols=tuple(outside[:OUT_OF_SCOPE_SHOWN]),
        stops_to_place=to_place,
    )
