"""``posactors run`` before the engine starts: the live interlock, then a read-only look.

:func:`check_live_consent` runs before any request: against Alpaca's live trading
endpoint the service needs ``--live`` or ``live: true``. :func:`preflight` then only
reads the broker (account, positions, open orders), checks the state directory belongs
to this account (:mod:`posactors.state_identity`), and says the start banner
(:mod:`posactors.start_banner`) on stderr and in the JSON log.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from posactors.errors import InputError
from posactors.log import EventLog
from posactors.policy import Config
from posactors.start_banner import start_banner
from posactors.state_identity import account_identity, claim_state, describe
from posactors.store import StoreError

LIVE_HOST = "api.alpaca.markets"  # Alpaca's live trading endpoint (paper: paper-api.)


def is_live_endpoint(base_url: str) -> bool:
    """True for Alpaca's live trading endpoint (real money)."""
    host = urlsplit(base_url).hostname or ""
    return host.rstrip(".").lower() == LIVE_HOST


def check_live_consent(config: Config) -> bool:
    """True when trading live; InputError without ``live`` against the live endpoint.

    Reads only the configuration and the environment (no request, no client).
    ``live`` asked for against any other endpoint is said on stderr, and the service
    runs as it would without it.
    """
    from posactors.adapters.alpaca import settings_from_env

    base_url = settings_from_env(config).base_url
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
    broker: Any,
    config: Config,
    state_dir: Path,
    log: EventLog,
    *,
    live: bool,
    opened: Sequence[Any] = (),
) -> dict[str, Any] | None:
    """Read the account, claim the state, say the banner; the account for ``Engine.account``.

    Only reads at the broker. InputError or StoreError (nothing written) for a state of
    another account or of the simulator. None when the broker cannot be read (said on
    stderr and in the log). On either, ``broker`` and ``opened`` (the clock, the market
    data) are closed.
    """
    try:
        account = broker.account_info()
        positions = broker.list_positions()
        orders = broker.open_orders()
        identity = account_identity(account["id"], account["number"], live)
        claim = claim_state(state_dir, identity)
    except Exception as exc:
        for resource in (*opened, broker):
            close = getattr(resource, "close", None)
            if close is not None:
                close()
        if isinstance(exc, (InputError, StoreError)):
            raise
        log.event("broker_unreachable", error=repr(exc))
        print(f"error: cannot read the account at the broker: {exc}", file=sys.stderr)
        return None
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
