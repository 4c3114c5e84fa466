"""What each configuration key means, in a trader's words, with an example of each.

Keyed by ``Model.field`` of :mod:`posactors.policy` (``*.field``: the order settings every
rule shares). :mod:`posactors.config_reference` turns them into docs/configuration.md and
the JSON Schema's descriptions; a new key without an entry here shows in the reference with
its pydantic ``description``, or fails tests/test_config_reference.py without one.
"""

from __future__ import annotations

# (meaning, example YAML)
MEANINGS: dict[str, tuple[str, str]] = {
    # top level
    "Config.exits": (
        "The exit policy of every position (the rules below).",
        "exits: {stop_loss: {pct: 8}}",
    ),
    "Config.overrides": (
        "Per-symbol changes, deep-merged into `exits` for that symbol: a mapping merges key by "
        "key, a list (e.g. `tiers`) is replaced whole, `null` switches a rule off.",
        "overrides: {AAPL: {stop_loss: {pct: 5}}, TSLA: {take_profit: null}}",
    ),
    "Config.dry_run": (
        "Decide and journal every exit, send nothing to the broker (same as `run --dry-run`).",
        "dry_run: true",
    ),
    "Config.live": (
        "Required (or `run --live`) to run against Alpaca's live endpoint: real money.",
        "live: true",
    ),
    "Config.scope": (
        "Which positions are posactors' to manage; a position out of scope is never touched.",
        'scope: {symbols: ["*"], exclude: ["GME"]}',
    ),
    "Config.notify": (
        "Where to send notifications (apprise URLs) and for which events.",
        'notify: {urls: ["ntfy://my-topic"], events: [approval_requested, exit_filled]}',
    ),
    "NotifySettings.urls": (
        "apprise URLs (Telegram, Discord, Slack, ntfy, e-mail, webhooks); they carry tokens, "
        "so they are never shown (also from `$POSACTORS_NOTIFY_URLS`, space-separated).",
        'urls: ["tgram://BOT_TOKEN/CHAT_ID"]',
    ),
    "NotifySettings.events": (
        "Which events are sent (all by default): approval_requested, exit_filled, exit_failed, "
        "alert, kill_switch, position_parked, breaker_tripped, service_started, "
        "service_stopped.",
        "events: [approval_requested, exit_filled, alert]",
    ),
    "NotifySettings.batch_s": (
        "Events within this many seconds go as one message (a burst of 500 fills is a few).",
        "batch_s: 30",
    ),
    "NotifySettings.max_retries": (
        "How often a message that could not be delivered is tried again before it is dropped "
        "(and counted).",
        "max_retries: 5",
    ),
    "NotifySettings.retry_s": (
        "The first retry's delay in seconds; each further one waits twice as long.",
        "retry_s: 5",
    ),
    "NotifySettings.max_lines": (
        "Lines listed in one message; the rest are counted, not listed.",
        "max_lines: 50",
    ),
    "Config.market_data": (
        "Where quotes come from and when they are too old.",
        "market_data: {poll_interval_s: 2}",
    ),
    "Config.broker": (
        "Broker access: rate limit, timeouts, endpoints.",
        "broker: {request_timeout_s: 10}",
    ),
    "Config.engine": (
        "Circuit breakers, reconciliation and the portfolio kill switch.",
        "engine: {max_drawdown_pct: 15}",
    ),
    "Config.state": ("Where the state (an LMDB database) is kept.", "state: {path: ./state}"),
    # scope
    "Scope.symbols": (
        "Glob patterns of the symbols managed (`*` = all).",
        'symbols: ["A*", "MSFT"]',
    ),
    "Scope.exclude": ("Glob patterns left alone even if `symbols` matches.", 'exclude: ["GME"]'),
    # the exit policy
    "ExitPolicy.trigger": (
        "Which price the rules compare: the last trade, the bid, the ask or the midpoint.",
        "trigger: bid",
    ),
    "ExitPolicy.stop_loss": (
        "Sell everything once the loss reaches `pct` percent.",
        "stop_loss: {pct: 8}",
    ),
    "ExitPolicy.staircase": (
        "A stop that climbs in steps as the best gain so far rises (locks in profit).",
        "staircase: {steps: [{at_gain_pct: 8, lock_pct: 2}, {at_gain_pct: 15, lock_pct: 8}]}",
    ),
    "ExitPolicy.trailing": (
        "A stop that follows the highest price seen, `trail_pct` percent below it.",
        "trailing: {activate_gain_pct: 10, trail_pct: 5}",
    ),
    "ExitPolicy.take_profit": (
        "Sell everything once the gain reaches `pct` percent.",
        "take_profit: {pct: 16}",
    ),
    "ExitPolicy.tiers": (
        "Partial exits, each once per position, when all its conditions hold; "
        "checked in the order given.",
        "tiers: [{name: t1, sell_pct: 50, gain_pct: {min: 5}}]",
    ),
    "ExitPolicy.max_hold": ("Sell everything after a time limit.", "max_hold: {hours: 24}"),
    "ExitPolicy.partial_fills": (
        "What happens to an exit order that fills only in part.",
        "partial_fills: {resubmit_after_s: 60}",
    ),
    "ExitPolicy.extended_hours": (
        "Also exit in pre- and after-market, with limit orders only (Alpaca's rule); "
        "otherwise what triggers outside the session is sent at the open.",
        "extended_hours: true",
    ),
    "ExitPolicy.fractional": ("Allow fractional share quantities.", "fractional: true"),
    "*.order_type": (
        "The exit order: `market`, or `limit` at `limit_offset_pct`.",
        "order_type: limit",
    ),
    "*.limit_offset_pct": (
        "For a limit exit: how far past the trigger price the limit sits, in percent "
        "(below it when selling a long).",
        "limit_offset_pct: 0.5",
    ),
    "*.time_in_force": ("How long the exit order lives at the broker.", "time_in_force: gtc"),
    "StopLoss.pct": (
        "The loss, in percent of the entry price, that closes the position.",
        "pct: 8",
    ),
    "StopLoss.on_broker": (
        "Also keep a stop order at the broker for the whole position, so it stays protected "
        "while posactors is down; raised as the effective stop rises, never lowered.",
        "on_broker: true",
    ),
    "TakeProfit.pct": ("The gain, in percent of the entry price, that closes it.", "pct: 16"),
    "TakeProfit.approval_expires_min": (
        "With `require_approval`: a request nobody answered within this many minutes is "
        "withdrawn (and asked again at the then price if the target still holds).",
        "approval_expires_min: 30",
    ),
    "TakeProfit.require_approval": (
        "Ask a person first (`posactors approve`); the exit is sent once approved, if the "
        "position is still open.",
        "require_approval: true",
    ),
    "Staircase.steps": (
        "The steps, by rising `at_gain_pct`.",
        "steps: [{at_gain_pct: 8, lock_pct: 2}]",
    ),
    "StaircaseStep.at_gain_pct": ("Once the best gain reached this percent ...", "at_gain_pct: 15"),
    "StaircaseStep.lock_pct": (
        "... the stop is at least entry + this percent (below `at_gain_pct`; may be negative).",
        "lock_pct: 8",
    ),
    "Trailing.activate_gain_pct": (
        "The trailing stop starts once the best gain reached this percent.",
        "activate_gain_pct: 10",
    ),
    "Trailing.trail_pct": (
        "How far below the highest price (above the lowest, for a short) the stop trails.",
        "trail_pct: 5",
    ),
    "Tier.name": ("A name for reports and order ids (letters, digits, `_.-`).", "name: tier1"),
    "Tier.sell_pct": (
        "Percent of the quantity first seen to sell (rounded down to whole shares); the "
        "tiers together at most 100.",
        "sell_pct: 50",
    ),
    "Tier.gain_pct": ("The gain band in which the tier may fire.", "gain_pct: {min: 8, max: 10}"),
    "Tier.trading_days": (
        "The trading days on which it may fire (day 1 = the session the position opened).",
        "trading_days: {min: 2}",
    ),
    "Tier.window": (
        "The time of day (New York) in which it may fire.",
        'window: {start: "15:50", end: "15:55"}',
    ),
    "Tier.volume_spike": (
        "Fire only on a 1-minute volume spike.",
        "volume_spike: {ratio: 2, lookback_bars: 30}",
    ),
    "Tier.min_shares": ("Skip while fewer than this many shares would be sold.", "min_shares: 10"),
    "Tier.min_shares_remaining": (
        "Skip while selling would leave fewer than this many shares.",
        "min_shares_remaining: 5",
    ),
    "Tier.cooldown_min": (
        "Minutes to wait after an attempt (sent, rejected or failed) before the next.",
        "cooldown_min: 15",
    ),
    "GainRange.min": ("Lowest gain, percent (inclusive).", "min: 5"),
    "GainRange.max": ("Highest gain, percent (inclusive); none: no upper end.", "max: 10"),
    "DayRange.min": ("First trading day (inclusive).", "min: 1"),
    "DayRange.max": ("Last trading day (inclusive); none: no end.", "max: 1"),
    "Window.start": ("Start, HH:MM exchange time (inclusive).", 'start: "15:50"'),
    "Window.end": (
        "End, HH:MM exchange time (inclusive; no window crosses midnight).",
        'end: "15:55"',
    ),
    "VolumeSpike.ratio": (
        "The last completed 1-minute bar's volume is at least this times the mean before it.",
        "ratio: 2",
    ),
    "VolumeSpike.lookback_bars": ("How many bars the mean is taken over.", "lookback_bars: 30"),
    "MaxHold.hours": ("Close once the position is this many hours old.", "hours: 24"),
    "MaxHold.trading_days": (
        "Close once the trading-day number exceeds this (day 1 = the opening session).",
        "trading_days: 5",
    ),
    "PartialFills.resubmit_after_s": (
        "Seconds an unfilled remainder may work before it is cancelled and sent again.",
        "resubmit_after_s: 30",
    ),
    "PartialFills.max_resubmits": (
        "How many times; then a stop goes out as a market order, anything else alerts.",
        "max_resubmits: 3",
    ),
    # the service
    "MarketDataSettings.source": (
        "Quotes by polling snapshots every `poll_interval_s`, or from Alpaca's stream.",
        "source: stream",
    ),
    "MarketDataSettings.poll_interval_s": ("Seconds between quote polls.", "poll_interval_s: 2"),
    "MarketDataSettings.batch_size": ("Symbols per quote request.", "batch_size: 100"),
    "MarketDataSettings.stale_after_s": (
        "A quote older than this many seconds triggers nothing (and is counted).",
        "stale_after_s: 15",
    ),
    "MarketDataSettings.max_concurrent_requests": (
        "Requests of one poll (its `batch_size` chunks) in flight at once, at most 6 (each "
        "is a thread); 1 sends them one after another.",
        "max_concurrent_requests: 2",
    ),
    "BrokerSettings.rate_limit_per_min": (
        "Most broker requests a minute (Alpaca allows 200).",
        "rate_limit_per_min: 150",
    ),
    "BrokerSettings.request_timeout_s": (
        "Timeout of every broker call, seconds.",
        "request_timeout_s: 10",
    ),
    "BrokerSettings.base_url": (
        "Trading endpoint; default `APCA_API_BASE_URL`, else Alpaca's paper endpoint.",
        "base_url: https://paper-api.alpaca.markets",
    ),
    "BrokerSettings.data_url": (
        "Market data endpoint; default `APCA_API_DATA_URL`, else Alpaca's.",
        "data_url: https://data.alpaca.markets",
    ),
    "EngineSettings.max_consecutive_errors": (
        "Broker errors in a row after which a position (or the broker) pauses for `cooldown_s`.",
        "max_consecutive_errors: 5",
    ),
    "EngineSettings.cooldown_s": ("Seconds such a pause lasts.", "cooldown_s: 120"),
    "EngineSettings.reconcile_interval_s": (
        "Seconds between comparisons of the broker's positions with the state.",
        "reconcile_interval_s: 30",
    ),
    "EngineSettings.max_drawdown_pct": (
        "Portfolio kill switch: alert when equity falls this percent below its peak "
        "(exits keep working); none: off.",
        "max_drawdown_pct: 10",
    ),
    "EngineSettings.dispatcher_threads": (
        "Worker threads that run every position actor (not one thread each); above one, a "
        "position stuck in a slow handler holds up no other.",
        "dispatcher_threads: 2",
    ),
    "EngineSettings.dispatcher_throughput": (
        "Messages a worker handles for one position before the next position waiting gets "
        "its turn.",
        "dispatcher_throughput: 32",
    ),
    "EngineSettings.dispatcher_stall_s": (
        "Seconds every worker may be held by one position's handler, with other positions "
        "waiting, before a spare worker starts and dispatcher_stalled names the positions.",
        "dispatcher_stall_s: 0.25",
    ),
    "EngineSettings.dispatcher_spares": (
        "Spare workers started while every worker is stuck (each leaves once idle for a "
        "second); 0: none (a stall is still logged).",
        "dispatcher_spares: 2",
    ),
    "EngineSettings.journal_horizon_days": (
        "Days a finished exit intent (filled, cancelled, rejected...) stays in the journal; "
        "older ones leave it a minute after start, then daily. Open ones always stay; "
        "history keeps every closed position.",
        "journal_horizon_days: 90",
    ),
    "StateSettings.path": (
        "The state directory (`run --state` overrides it).",
        "path: /var/lib/posactors",
    ),
}

SECTION_EXAMPLES = {
    "exits": """\
exits:
  trigger: last
  stop_loss: {pct: 8, on_broker: true}
  staircase: {steps: [{at_gain_pct: 8, lock_pct: 2}, {at_gain_pct: 15, lock_pct: 8}]}
  trailing: {activate_gain_pct: 10, trail_pct: 5}
  take_profit: {pct: 16, require_approval: true}
  tiers:
    - {name: tier1, sell_pct: 50, gain_pct: {min: 5}, trading_days: {min: 1, max: 1},
       window: {start: "15:50", end: "15:55"}, min_shares: 10, cooldown_min: 15}
  max_hold: {hours: 24}
  partial_fills: {resubmit_after_s: 30, max_resubmits: 3}
overrides:
  AAPL: {stop_loss: {pct: 5}}""",
    "market_data": (
        "market_data: {source: poll, poll_interval_s: 1.0, batch_size: 200, stale_after_s: 10,\n"
        "              max_concurrent_requests: 4}"
    ),
    "broker": "broker: {rate_limit_per_min: 200, request_timeout_s: 5}",
    "engine": (
        "engine: {max_consecutive_errors: 3, cooldown_s: 300, reconcile_interval_s: 60,\n"
        "         max_drawdown_pct: 15, journal_horizon_days: 30}"
    ),
    "state": "state: {path: ./state}",
}
