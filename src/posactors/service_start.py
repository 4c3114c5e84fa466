"""``posactors run`` before the engine starts: the live interlock, then a read-only look.

:func:`check_live_consent` runs before any request: against Alpaca's live trading
endpoint the service needs ``--live`` or ``live: true``. :func:`preflight` then only
reads the broker (account, positions, open orders), checks the state directory belongs
to this account (:mod:`posactors.state_identity`), and says the start banner
(:mod:`posactors.start_banner`) on stderr and in the JSON log.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from posactors.errors import InputError
from posactors.log import EventLog
from posactors.policy import Config
from posactors.start_banner import start_banner
from posactors.state_identity import account_identity, claim_state, describe

LIVE_HOST = "api.alpaca.markets"  # Alpaca's live trading endpoint (paper: paper-api.)


def is_live_endpoint(base_url: str) -> bool:
    """True for Alpaca's live trading endpoint (real money)."""
    host = urlsplit(base_url).hostname or ""
    return host.rstrip(".").lower() == LIVE_HOST


def check_live_consent(base_url: str, config: Config) -> bool:
    """True when trading live; InputError without ``live`` against the live endpoint.

    ``live`` asked for against any other endpoint is said on stderr, and the service
    runs as it would without it.
    """
    live = is_live_endpoint(base_url)
    if live and not config.live:
        raise InputError(
            f"{base_url} is Alpaca's LIVE trading endpoint (real money): start with --live "
            "(or set `live: true` in the config) to trade it; nothing was sent"
        )
    if config.live and not live:
        print(
            f"note: --live / live: true asked, but {base_url} is not Alpaca's live trading "
            f"endpoint (https://{LIVE_HOST}); running against it as without --live",
            file=sys.stderr,
        )
    return live


def preflight(
    broker: Any, config: Config, state_dir: Path, log: EventLog, *, live: bool
) -> dict[str, Any]:
    """Read the account, claim the state, say the banner; the account for ``Engine.account``.

    Only reads at the broker. InputError (nothing written) for a state of another
    account or of the simulator; a broker error propagates.
    """
    account = broker.account_info()
    positions = broker.list_positions()
    orders = broker.open_orders()
    identity = account_identity(account["id"], account["number"], live)
    claim = claim_state(state_dir, identity)
    if claim.adopted:
        print(
            f"note: adopting the state at {state_dir} (written before posactors recorded "
            f"whose it is) for {describe(identity)}",
            file=sys.stderr,
        )
        log.event("state_adopted", state=str(state_dir), identity=identity)
    banner = start_banner(account, positions, orders, config, live=live)
    print(banner.text(), file=sys.stderr, flush=True)
    log.event("banner", **banner.fields())
    return {**{k: account[k] for k in ("id", "number", "equity")}, "live": live}
