"""Hypothesis fuzzing of what comes from outside: data files, broker JSON, the command line.

Bounded for CI (a few seconds each, about 20 s in all). What must hold:

- a ticks file (``replay``), a daily-bar file or an entries file (``backtest``) gives its
  rows, or an InputError naming the file (and the line, for a bad row), or skips and
  counts a bad row; never another exception;
- broker JSON (``adapters.alpaca.parse``) gives a sane value or a BadRecord (lenient readers:
  None); never another exception;
- ``posactors.cli.main`` returns 0, 1 or 2 (argparse: SystemExit 0 or 2); never raises.

Config fuzzing lives in tests/test_policy.py.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import itertools
import math
import os
import shutil
import signal
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pykka
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from posactors.adapters.alpaca import parse
from posactors.backtest.bars import read_bars
from posactors.backtest.entries import read_entries
from posactors.calendar import xnys
from posactors.cli import main
from posactors.errors import InputError
from posactors.model import OrderUpdate
from posactors.policy import Config
from posactors.replay import replay

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CONFIG = Config.model_validate(
    {"exits": {"stop_loss": {"pct": 5}, "trailing": {"trail_pct": 2}, "take_profit": {"pct": 8}}}
)
NAN_TEXTS = ("nan", "NaN", "-nan", "sNaN", "snan")


def write(data: bytes) -> Path:
    handle, name = tempfile.mkstemp(suffix=".csv", dir=WORK)
    with os.fdopen(handle, "wb") as f:
        f.write(data)
    return Path(name)


WORK = tempfile.mkdtemp(prefix="posactors-fuzz-")
atexit.register(shutil.rmtree, WORK, True)

# --- cells and rows
numbers = st.one_of(
    st.sampled_from(["100", "99.5", "0", "-1", "1e400", "inf", "-inf", "", " 7 ", "abc", "1_0"]),
    st.sampled_from(NAN_TEXTS),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
)
times = st.one_of(
    st.datetimes(datetime(2024, 3, 4), datetime(2024, 3, 15), timezones=st.just(UTC)).map(
        datetime.isoformat
    ),
    st.sampled_from(["2024-03-11T10:00:00", "not a time", "", "2024-13-01T00:00:00+00:00"]),
)
days = st.one_of(
    st.dates(datetime(2024, 3, 1).date(), datetime(2024, 3, 31).date()).map(str),
    st.sampled_from(["2024-03-09", "03/11/2024", "", "2024-02-30"]),
)
garbage = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    return "\n".join(",".join(r) for r in [header, *rows]).encode()


@st.composite
def tick_files(draw) -> bytes:
    extra = draw(st.lists(st.sampled_from(["volume", "bid", "ask", "junk"]), unique=True))
    header = draw(st.permutations(["time", "price", *extra]))
    if draw(st.booleans()) and len(header) > 1:
        header = header[:-1]  # a required column may go missing
    cell = {"time": times}
    rows = draw(
        st.lists(
            st.lists(st.one_of(numbers, garbage), min_size=len(header), max_size=len(header)),
            max_size=8,
        )
    )
    for row in rows:
        for i, name in enumerate(header):
            if name in cell:
                row[i] = draw(cell[name])
    return csv_bytes(header, rows)


@given(st.one_of(tick_files(), st.binary(max_size=200)))
@FUZZ
def test_a_ticks_file_gives_a_replay_or_an_input_error(data):
    path = write(data)
    try:
        result = replay(CONFIG, "AAPL:100@100", path, xnys())
    except InputError as exc:
        assert str(path) in str(exc)
        return
    summary = result.summary()
    assert 0 <= summary["remaining_qty"] <= 100
    assert summary["bad_quotes"] <= summary["ticks"]


@st.composite
def bar_files(draw) -> bytes:
    columns = ["symbol", "date", "open", "high", "low", "close", "volume"]
    header = draw(st.permutations(columns))
    if draw(st.booleans()):
        header = [*header, "extra"]
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        cells = {"symbol": draw(st.sampled_from(["AAA", "BBB", "", " C "])), "date": draw(days)}
        row = [cells.get(name) or draw(numbers) for name in header]
        if draw(st.integers(0, 9)) == 0:
            row = row[:-1]  # a row of the wrong width
        rows.append(row)
    return csv_bytes(header, rows)


@given(st.one_of(bar_files(), st.binary(max_size=200), st.binary(max_size=60).map(
    lambda b: b"\x1f\x8b" + b)))  # fmt: skip
@FUZZ
def test_a_bar_file_gives_bars_or_an_input_error(data):
    path = write(data)
    try:
        bars = read_bars(path, xnys())
    except InputError as exc:
        assert str(path) in str(exc) or "line" in str(exc)
        return
    assert bars.bar_count + len(bars.bad) == bars.rows  # every row used or counted
    for symbol_bars in bars.bars.values():
        for b in symbol_bars:
            assert 0 < b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
            assert b.volume >= 0


@given(st.lists(st.tuples(garbage, times, numbers, numbers), max_size=6), st.booleans())
@FUZZ
def test_an_entries_file_gives_entries_or_an_input_error(rows, with_price):
    header = ["symbol", "time", "qty", *(["price"] if with_price else [])]
    data = csv_bytes(header, [list(r[: len(header)]) for r in rows])
    path = write(data)
    try:
        entries = read_entries(path)
    except InputError as exc:
        assert str(path) in str(exc)
        return
    assert all(e.qty != 0 and e.time.tzinfo is not None for e in entries)


# --- broker JSON
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(),
        st.sampled_from(["", "1.5", "-3", "NaN", "Infinity", "1e999999", "2024-03-11T10:00:00Z"]),
        garbage,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(garbage, inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ["client_order_id", "status", "filled_qty", "filled_avg_price", "updated_at", "id",
          "symbol", "side", "qty", "type", "time_in_force", "limit_price", "stop_price",
          "avg_entry_price", "t", "o", "h", "l", "c", "v", "timestamp", "is_open",
          "next_open", "next_close", "equity", "replaced_by"]  # fmt: skip
records = st.one_of(json_values, st.dictionaries(st.sampled_from(FIELDS), json_values))
quotes = st.dictionaries(
    st.sampled_from(["latestTrade", "latestQuote"]),
    st.dictionaries(st.sampled_from(["p", "t", "bp", "ap"]), json_values),
)


def finite(value: Decimal | None, positive: bool = False) -> bool:
    return value is None or (value.is_finite() and (value > 0 if positive else value >= 0))


@given(records)
@FUZZ
def test_broker_json_gives_a_value_or_a_bad_record(raw):
    fallback = datetime(2024, 3, 11, 15, tzinfo=UTC)
    readers = {
        "order_update": lambda r: parse.order_update(r, fallback),
        "order_request": parse.order_request,
        "holding": parse.holding,
        "bar": lambda r: parse.bar("AAPL", r),
        "market_clock": parse.market_clock,
        "account": parse.account,
    }
    for name, read in readers.items():
        try:
            value = read(raw)
        except parse.BadRecord:
            continue
        if isinstance(value, OrderUpdate):
            assert finite(value.filled_qty) and finite(value.filled_avg_price, positive=True)
            assert value.time.tzinfo is not None
        elif name == "order_request":
            assert finite(value.qty, positive=True) and value.qty > 0
        elif name == "holding":
            assert value.qty > 0 and value.entry_price > 0 and value.qty.is_finite()
        elif name == "bar":
            prices = (value.open, value.high, value.low, value.close)
            assert finite(value.volume) and all(finite(p, positive=True) for p in prices)


@given(st.one_of(quotes, json_values))
@FUZZ
def test_a_quote_snapshot_never_raises(raw):
    quote = parse.snapshot_quote("AAPL", raw)
    if quote is not None:
        assert quote.time.tzinfo is not None
        assert all(finite(p, positive=True) for p in (quote.last, quote.bid, quote.ask))


# --- the command line
FILES = {
    "config": str(ROOT / "config" / "fleece.yaml"),
    "bad_config": str(ROOT / "tests" / "chaos" / "test_fuzz_inputs.py"),
    "ticks": str(ROOT / "examples" / "fleece_ticks.csv"),
    "bars": str(ROOT / "tests" / "data" / "backtest_bad_bars.csv"),
    "missing": "/nonexistent/file.csv",
}
any_file = st.sampled_from(sorted(FILES.values()))
junk = st.sampled_from(["-1", "0", "abc", "", "nan", "1.5", "--bogus", "-h"])


@st.composite
def opt(draw, flag: str, good) -> list[str]:
    """The option with a good value (mostly), a bad one, no value, or not at all."""
    roll = draw(st.integers(0, 29))
    if roll < 27:
        return [flag, draw(good)]
    return [[flag, draw(st.one_of(junk, any_file))], [flag], []][roll - 27]


def flag(name: str) -> st.SearchStrategy[list[str]]:
    return st.sampled_from([[], [name]])


small = st.sampled_from(["1", "2", "0.5"])
config = st.sampled_from([FILES["config"]] * 5 + [FILES["bad_config"]])
COMMANDS = {
    "config": [st.just(["config", "check"]), st.lists(st.one_of(config, any_file), max_size=2),
               flag("--show"), opt("--symbol", st.just("AAPL")), flag("--json")],
    "replay": [st.just(["replay"]), opt("--config", config),
               opt("--position", st.sampled_from(["AAPL:100@100", "AAPL:-5@1", "X:0@1"])),
               opt("--ticks", st.just(FILES["ticks"])),
               opt("--opened", st.sampled_from(["2024-03-11T10:00:00-04:00", "yesterday"])),
               flag("--json")],
    "simulate": [st.just(["simulate"]), opt("--positions", small), opt("--duration", small),
                 opt("--seed", st.sampled_from(["0", "7"])), opt("--config", config),
                 opt("--speed", st.sampled_from(["1000", "nan"])), flag("--json")],
    "backtest": [st.just(["backtest"]), opt("--config", config),
                 opt("--data", st.just(FILES["bars"])),
                 opt("--entries", st.sampled_from(["every:5d", "random:2:1", "every:0d"])),
                 opt("--qty", small), opt("--slippage-pct", st.sampled_from(["0.1", "100"])),
                 opt("--workers", st.just("1")), flag("--json")],
    "approve": [st.just(["approve"]), opt("--state", st.just("/nonexistent")),
                st.lists(st.just("S000:tp"), max_size=1)],
    "run": [st.just(["run"]), opt("--config", config), flag("--dry-run")],
    "other": [st.lists(st.one_of(junk, any_file), max_size=3)],
}  # fmt: skip


@st.composite
def argvs(draw) -> list[str]:
    parts = COMMANDS[draw(st.sampled_from(sorted(COMMANDS)))]
    argv = [token for part in parts for token in draw(part)]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(junk))
    return argv


def bounded(argv: list[str]) -> bool:
    """Leave out runs that are valid but long (a simulation of many positions or seconds),
    and simulate's non-finite --duration (test_simulate_rejects_a_non_finite_duration)."""
    if argv[:1] != ["simulate"]:
        return True
    for flag, value in itertools.pairwise(argv):
        if flag in ("--positions", "--duration"):
            with contextlib.suppress(ValueError):
                if not math.isfinite(float(value)) or float(value) > 2:
                    return False
    return True


@given(argvs())
@settings(FUZZ, max_examples=80)
def test_the_command_line_exits_0_1_or_2_and_never_raises(argv):
    if not bounded(argv):
        event("left out: long or a known bug")
        return
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8") for _ in range(2))  # .buffer too
    env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with (
        mock.patch.dict(os.environ, env, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, or a usage error
            code = exc.code
            assert code in (0, 2), argv
        finally:
            pykka.ActorRegistry.stop_all()  # an engine left running must not outlive it
            for sig, handler in handlers.items():  # simulate installs its own
                signal.signal(sig, handler)
    event(f"{(argv or ['-'])[0]}: exit {code}")
    assert code in (0, 1, 2), (argv, code)
    if code == 1:
        err.flush()
        assert err.buffer.getvalue().strip(), argv  # a failure says why
