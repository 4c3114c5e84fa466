"""``posactors run``: the service against Alpaca (or any Alpaca-compatible server).

Starts the engine in real time on the broker's clock, reconciles with the
account, runs until SIGINT/SIGTERM, then shuts down cleanly (state flushed,
every actor stopped) and resumes from its state next time. Logs are JSON lines
on stderr; on a terminal a live status table is drawn on stdout.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from posactors.calendar import xnys
from posactors.control import ControlOptions, ControlSurface
from posactors.log import EventLog
from posactors.policy import Config
from posactors.runtime.broker_clock import BrokerClock, BrokerSessionCalendar
from posactors.runtime.engine import Engine, tune_process
from posactors.runtime.heap import FrozenHeap
from posactors.service_start import check_live_consent, preflight

EXIT_OK, EXIT_FAILURE = 0, 1


def run_service(
    config: Config,
    state_dir: Path,
    live: bool = False,
    metrics_port: int | None = None,
    control: ControlOptions | None = None,
) -> int:
    """Run until a signal; 0 after a clean stop, 1 if the engine failed underneath."""
    from posactors.adapters.alpaca import from_env

    trading_live = check_live_consent(config)  # before any request: --live for live trading
    broker, market_data = from_env(config)  # InputError (exit 2) before anything starts
    log = EventLog(stream=sys.stderr.buffer)
    try:
        clock = BrokerClock(
            broker.clock, on_error=lambda exc: log.event("broker_clock_failed", error=repr(exc))
        )
    except Exception as exc:
        log.event("broker_unreachable", error=repr(exc))
        print(f"error: cannot read the broker's clock: {exc}", file=sys.stderr)
        broker.close()
        return EXIT_FAILURE
    log = EventLog(stream=sys.stderr.buffer, now=clock.now)
    # read-only: the account, its positions and orders; the state claimed; the banner
    opened = (clock, market_data)
    account = preflight(broker, config, state_dir, log, live=trading_live, opened=opened)
    if account is None:  # the broker could not be read: said, and all closed
        return EXIT_FAILURE
    calendar = BrokerSessionCalendar(xnys(), clock)
    engine = Engine(
        config, broker, market_data, state_dir=state_dir, clock=clock, calendar=calendar, log=log
    )
    control = control or ControlOptions(live=live, metrics_port=metrics_port)
    surface = ControlSurface(config, engine, log, state_dir, control)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    status = EXIT_OK
    switch_interval = tune_process()  # this process is the service's: see tune_process
    heap = FrozenHeap()  # this process's heap too: see runtime/heap.py
    try:
        engine.account = account  # the mode (PAPER / LIVE) and the account in status()
        engine.start()
        log.event("heap_frozen", seconds=round(heap.freeze(), 3))
        surface.start()
        log.event(
            "service_running",
            state=str(state_dir),
            dry_run=config.dry_run,
            metrics=control.metrics_port,
            http=control.http_port,
        )
        while not stop.wait(1.0):
            if engine.failed is not None:
                log.event("service_failed", error=engine.failed)
                status = EXIT_FAILURE
                break
            surface.update()
            refreshed = heap.tick()
            if refreshed is not None:
                log.event("heap_refreshed", seconds=round(refreshed, 3))
    finally:
        surface.stop(status)
        engine.stop()
        heap.thaw()
        broker.close()
        close = getattr(market_data, "close", None)
        if close is not None:
            close()
        log.event("service_stopped", status=status)
        sys.setswitchinterval(switch_interval)
    return status
