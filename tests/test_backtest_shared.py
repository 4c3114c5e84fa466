"""Each preset on the shared real data: the metrics must be consistent.

Needs ``../shared/data/us_equities_daily_2015_2019.csv.gz`` (skipped without it). The
file is read once; each preset runs on a few symbols (pennyhunter's positions never
close, so it gets fewer), keeping the whole module well under a minute.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from posactors.backtest.bars import BarData, read_bars
from posactors.backtest.engine import Settings
from posactors.backtest.metrics import consistency_problems
from posactors.backtest.runner import run_backtest
from posactors.calendar import xnys
from posactors.policy import load_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = SHARED / "us_equities_daily_2015_2019.csv.gz"
SLIPPAGE = Decimal("0.02")
CONFIG = Path(__file__).resolve().parents[1] / "config"
SYMBOLS = {
    "catalyst": ["AAPL", "BHF", "CBS", "JPM", "MSFT", "NVDA", "STI", "VIAB", "XOM"],
    "fleece": ["AAPL", "BHF", "CBS", "JPM", "MSFT", "NVDA", "STI", "VIAB", "XOM"],
    "sentinel": ["AAPL", "BHF", "NVDA", "XOM"],
    "default": ["AAPL", "BHF", "NVDA", "XOM"],
    "pennyhunter": ["BHF", "NVDA"],
}

pytestmark = pytest.mark.skipif(
    not DATA.exists(), reason=f"shared market data not found at {DATA} (see shared/data/README.md)"
)


@pytest.fixture(scope="module")
def data() -> BarData:
    return read_bars(DATA, xnys())


def test_the_file_reads_with_its_known_bad_rows(data):
    assert data.rows == 592_358
    assert data.bad_by_kind() == {"duplicate": 4, "inconsistent": 3, "non_positive": 1}
    assert data.bar_count == 592_358 - 8 and len(data.bars) == 482


@pytest.mark.parametrize("preset", sorted(SYMBOLS))
def test_preset_metrics_are_consistent(data, preset):
    config, _ = load_config(CONFIG / f"{preset}.yaml")
    result = run_backtest(
        [(preset, config)],
        DATA,
        "every:20d",
        xnys(),
        Settings(slippage_pct=SLIPPAGE),
        symbols=SYMBOLS[preset],
        data=data,
        with_per_symbol=True,
    )
    summary = result.policies[0].summary
    assert consistency_problems(summary) == []
    assert summary["positions"] > 0
    assert summary["trades"] > 0
    for symbol, per in result.policies[0].by_symbol.items():
        assert consistency_problems(per) == [], symbol
    assert sum(p["trades"] for p in result.policies[0].by_symbol.values()) == summary["trades"]
    _fills_inside_their_bars(data, result.policies[0].trades)


def _fills_inside_their_bars(data: BarData, trades) -> None:
    """Every fill, before slippage, is a price of its session's bar: never a bad row's."""
    calendar = xnys()
    bars = {(s, b.session): b for s, rows in data.bars.items() for b in rows}
    for t in trades:
        assert t.exit_time > t.entry_time
        bar = bars[(t.symbol, calendar.session_of(t.exit_time))]
        price = t.exit_price / (1 - t.side.sign * SLIPPAGE / 100)
        assert bar.low <= price.quantize(Decimal("0.0001")) <= bar.high, t


def test_a_whole_run_of_catalyst_is_consistent(data):
    config, _ = load_config(CONFIG / "catalyst.yaml")
    result = run_backtest([("catalyst", config)], DATA, "every:20d", xnys(), data=data)
    summary = result.policies[0].summary
    assert consistency_problems(summary) == []
    assert summary["positions"] == summary["trades"] + summary["positions_open"] > 29_000
