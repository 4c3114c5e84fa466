"""Notifications: what they say, bursts batched, retries bounded, URLs never shown, the engine
never blocked. Delivered by the real apprise to a receiver on 127.0.0.1 (json://)."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from notify_receiver import Receiver
from posactors.log import EventLog
from posactors.model import ExitIntent, ExitKind, ExitReason, OrderSide, OrderType
from posactors.notify import Notifier
from posactors.notify_format import Notice, compose, notice_from_event, notice_from_log
from posactors.notify_settings import NotifySettings, mask_url, with_env_urls
from posactors.policy import ConfigError, parse_config
from posactors.runtime.context import Metrics
from posactors.runtime.messages import ExitEvent
from posactors.state import Fill
from test_runtime import account, config, make_engine, run

SECRET = "s3cr3tT0ken"
T = datetime(2024, 3, 11, 15, 0, tzinfo=UTC)


def fill_event(symbol="AAPL", qty="100", price="94", pnl="-600"):
    intent = ExitIntent(
        f"{symbol}-1", symbol, OrderSide.SELL, Decimal(qty), ExitReason(ExitKind.STOP_LOSS),
        OrderType.MARKET, "day", Decimal(price), None, False, 1, T, "pa-x",
    )  # fmt: skip
    fill = Fill(intent, Decimal(qty), Decimal(price), T, Decimal(pnl))
    return ExitEvent("filled", f"{symbol}-1", symbol, {"fill": fill})


def test_notices_say_what_happened():
    assert notice_from_event(fill_event()).text == "AAPL: sell 100 @ 94 (stop_loss), P&L -600"
    approval = ExitEvent(
        "approval", "A-1", "AAPL",
        {"approval_id": "A-1:tp", "price": Decimal(111), "entry": Decimal(100), "side": "long"},
    )  # fmt: skip
    text = notice_from_event(approval).text
    assert text.startswith("AAPL: take-profit waits for approval +11.00% at 111")
    kill = ExitEvent("alert", "*", "*", {"kill_switch": {"equity": "90", "peak": "100",
                                                         "drawdown_pct": "10"}})  # fmt: skip
    assert notice_from_event(kill).event == "kill_switch"
    assert notice_from_event(ExitEvent("decided", "A-1", "AAPL")) is None
    assert notice_from_log("actor_parked", {"position": "A-1", "error": "x"}).event == (
        "position_parked"
    )
    assert notice_from_log("broker_outage", {"in_a_row": 5}).event == "breaker_tripped"
    tripped = {"symbol": "AAPL", "until": "10:05", "error": "rejected"}
    assert notice_from_log("position_breaker_tripped", tripped).text == (
        "AAPL: its exits paused after repeated errors (until 10:05): rejected"
    )
    assert notice_from_log("exit_decided", {}) is None


def test_a_burst_of_500_fills_is_one_message_urgent_first():
    notices = [notice_from_event(fill_event(f"S{i:03d}")) for i in range(500)]
    notices.append(Notice("alert", "S007: the exit will not complete"))
    title, body, failure = compose(notices, max_lines=20)
    assert title == "posactors: 1 alert, 500 exit filled"
    lines = body.splitlines()
    assert len(lines) == 21 and lines[0] == "S007: the exit will not complete"
    assert lines[-1] == "... and 481 more (481 exit filled)"
    assert failure
    assert compose([notices[0]], 20) == ("posactors: exit filled", notices[0].text, False)


def test_urls_are_secret_in_config_errors_dumps_and_masks():
    cfg, _ = parse_config({"notify": {"urls": [f"tgram://{SECRET}/123"]}})
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.model_dump(mode="json"))
    assert cfg.notify.urls_masked() == ["tgram://***"]
    assert mask_url(f"json://127.0.0.1/{SECRET}") == "json://***"
    with pytest.raises(ConfigError) as err:
        parse_config({"notify": {"urls": [f"{SECRET} not a url"]}})
    assert "notify.urls[0]" in str(err.value) and SECRET not in str(err.value)


def test_urls_from_the_environment_are_added_and_checked():
    base = NotifySettings(urls=["json://127.0.0.1:9/a"])
    both = with_env_urls(base, f"tgram://{SECRET}/1  ntfy://topic")
    assert both.urls_masked() == ["json://***", "tgram://***", "ntfy://***"]
    assert with_env_urls(base, None) is base and with_env_urls(base, " ") is base
    with pytest.raises(ValueError, match="POSACTORS_NOTIFY_URLS: expected apprise URLs") as err:
        with_env_urls(base, f"{SECRET}")
    assert SECRET not in str(err.value)


def wait_until(predicate, timeout=20.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        done.wait(0.02)
    raise AssertionError("timed out")


def notifier(receiver, **settings):
    stream = io.BytesIO()
    metrics = Metrics()
    urls = [f"{receiver.url}/{SECRET}"]
    n = Notifier(NotifySettings(urls=urls, **settings), EventLog(stream=stream), metrics)
    return n, stream, metrics


def test_a_burst_becomes_a_few_messages_through_apprise():
    receiver = Receiver()
    n, stream, metrics = notifier(receiver, batch_s=0.5)
    try:
        for i in range(500):
            n.on_event(fill_event(f"S{i:03d}"))
        messages = receiver.wait_for(1)
    finally:
        n.stop()
        receiver.close()
    assert 1 <= len(messages) <= 3
    assert sum(m["message"].count("\n") + 1 for m in messages) <= 3 * 21
    assert messages[0]["title"].startswith("posactors: ")
    assert "S000: sell 100 @ 94 (stop_loss)" in messages[0]["message"]
    assert metrics.snapshot()["notify_notices"] == 500
    assert SECRET not in stream.getvalue().decode() and "json://***" in stream.getvalue().decode()


def test_failures_are_retried_then_counted_and_dropped():
    receiver = Receiver(fail=2)
    n, stream, metrics = notifier(receiver, batch_s=0.05, retry_s=0.05, max_retries=3)
    try:
        n.notice("service_started", "posactors started")
        [message] = receiver.wait_for(1)
    finally:
        n.stop()
    assert message["message"] == "posactors started" and receiver.posts == 3
    assert metrics.snapshot()["notify_failures"] == 2
    receiver.fail = 100
    n, stream, metrics = notifier(receiver, batch_s=0.05, retry_s=0.05, max_retries=1)
    try:
        n.notice("alert", "x")
        wait_until(lambda: metrics.snapshot().get("notify_dropped"))
    finally:
        n.stop()
        receiver.close()
    counters = metrics.snapshot()
    assert counters["notify_dropped"] == 1 and counters["notify_failures"] == 2
    log = stream.getvalue().decode()
    assert '"event":"notify_dropped"' in log and SECRET not in log


def test_events_not_chosen_are_not_sent():
    receiver = Receiver()
    n, _, _ = notifier(receiver, batch_s=0.05, events=["exit_filled"])
    try:
        n.notice("service_started", "posactors started")
        n.on_event(fill_event())
        [message] = receiver.wait_for(1)
    finally:
        n.stop()
        receiver.close()
    assert message["message"].startswith("AAPL: sell 100")


class StuckSender:
    """A notification service that never answers (until released)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def send(self, title: str, body: str, failure: bool) -> bool:
        self.calls += 1
        self.release.wait(30)
        return True


def test_a_stuck_notification_service_never_blocks_the_engine(tmp_path):
    sim = account(tmp_path, 20)
    engine = make_engine(tmp_path, sim, config(stop_loss={"pct": 5}))
    sender = StuckSender()
    n = Notifier(
        NotifySettings(urls=["json://127.0.0.1:9/"], batch_s=0.01),
        EventLog(stream=io.BytesIO()),
        engine.metrics,
        sender=sender,
    )
    engine.subscribe(n.on_event)
    engine.start()
    try:
        n.notice("service_started", "started")
        run(engine, sim, 3, {1: {f"S{i:03d}": "90" for i in range(20)}})
        assert engine.status()["positions"] == 0  # all 20 stopped out, while the sender hangs
    finally:
        engine.stop()
        sender.release.set()
        n.stop()
    assert sender.calls >= 1


class Captured:
    """A sender that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, title: str, body: str, failure: bool) -> bool:
        self.sent.append((title, body))
        return True


def test_a_position_breaker_trip_and_the_refusals_are_notified(tmp_path):
    from posactors.adapters.sim import SimFaults

    sim = account(tmp_path, 1, faults=SimFaults(reject=1.0))
    cfg = config(stop_loss={"pct": 5})
    cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"cooldown_s": 60})})
    engine = make_engine(tmp_path, sim, cfg)
    log = EventLog(stream=io.BytesIO())
    engine.log = log
    sender = Captured()
    n = Notifier(
        NotifySettings(urls=["json://127.0.0.1:9/"], batch_s=0.01),
        log,
        engine.metrics,
        sender=sender,
    )
    engine.subscribe(n.on_event)
    log.add_tap(n.on_log)
    engine.start()
    try:
        run(engine, sim, 10, {1: {"S000": "90"}})
    finally:
        engine.stop()
        n.stop()
    text = "\n".join(body for _, body in sender.sent)
    assert "S000: exit refused by the broker" in text
    assert "S000: its exits paused after repeated errors" in text
