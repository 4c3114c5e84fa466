"""backtest's report: sizing by capital, returns and drawdown in %, exits by reason with
win rate and return on cost (aligned), buy and hold, the plot, progress on a terminal only."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest

from posactors.backtest.bars import read_bars
from posactors.calendar import xnys
from test_backtest_cli import CONFIG, _run, _walk_rows, data  # noqa: F401  (data: a fixture)
from test_backtest_support import write_bars

CAPITAL = ["--capital", "100000", "--position-pct", "10"]


@pytest.fixture
def liquid(tmp_path) -> Path:
    """Like ``data`` but with millions of shares a day: the money decides the size."""
    lines = ["symbol,date,open,high,low,close,volume\n"]
    for seed, symbol in enumerate(("AAA", "BBB")):
        rows = [(*row, 5_000_000) for row in _walk_rows(seed)]
        part = write_bars(tmp_path / f"{symbol}.csv", rows, symbol)
        lines += part.read_text().splitlines(keepends=True)[1:]
    path = tmp_path / "liquid.csv"
    path.write_text("".join(lines))
    return path


def test_capital_buys_what_the_money_buys_when_the_volume_allows(liquid, tmp_path, capsys):
    trades = tmp_path / "t.csv"
    status, _, err = _run(
        capsys, "--config", str(CONFIG / "catalyst.yaml"), "--data", str(liquid), *CAPITAL,
        "--trades", str(trades),
    )  # fmt: skip
    assert status == 0, err
    rows = list(csv.DictReader(trades.open()))
    assert rows
    for r in rows:
        qty, price = Decimal(r["qty"]).copy_abs(), Decimal(r["entry_price"])
        assert qty == (Decimal(10000) / price).to_integral_value(rounding=ROUND_FLOOR)
        assert qty * price <= 10000 < (qty + 1) * price


def test_capital_sizes_each_entry_by_money(data, tmp_path, capsys):  # noqa: F811
    trades = tmp_path / "t.csv"
    status, out, err = _run(
        capsys, "--config", str(CONFIG / "catalyst.yaml"), "--data", str(data), *CAPITAL,
        "--trades", str(trades), "--json",
    )  # fmt: skip
    assert status == 0, err
    s = json.loads(out)["summary"]
    assert s["run"]["capital"] == 100000 and s["run"]["position_notional"] == 10000
    rows = list(csv.DictReader(trades.open()))
    bars = read_bars(data, xnys()).bars
    opens = {(s, b.open): b.volume for s, symbol_bars in bars.items() for b in symbol_bars}
    assert rows
    for r in rows:
        qty, price = Decimal(r["qty"]).copy_abs(), Decimal(r["entry_price"])
        cap = (opens[(r["symbol"], price)] / 10).to_integral_value(rounding=ROUND_FLOOR)
        by_money = (Decimal(10000) / price).to_integral_value(rounding=ROUND_FLOOR)
        assert qty == max(1, min(by_money, cap))
    total = sum(Decimal(r["pnl"]) for r in rows)
    assert Decimal(str(s["total_return_pct"])) == (total / 1000).quantize(Decimal("0.01"))
    assert 0 <= s["max_drawdown_pct"] < 100 and s["peak_exposure_pct"] >= 10


def test_exits_by_reason_have_count_win_rate_and_mean_return(data, tmp_path, capsys):  # noqa: F811
    trades = tmp_path / "t.csv"
    status, out, _ = _run(
        capsys, "--config", str(CONFIG / "fleece.yaml"), "--data", str(data),
        "--trades", str(trades), "--json",
    )  # fmt: skip
    assert status == 0
    by_reason = json.loads(out)["summary"]["exits_by_reason"]
    rows = list(csv.DictReader(trades.open()))
    for reason, r in by_reason.items():
        mine = [t for t in rows if t["reason"] == reason]
        wins = sum(Decimal(t["pnl"]) > 0 for t in mine)
        cost = sum(Decimal(t["entry_price"]) * Decimal(t["qty"]).copy_abs() for t in mine)
        assert r["trades"] == len(mine)
        assert Decimal(str(r["win_rate"])) == (Decimal(wins) / len(mine)).quantize(
            Decimal("0.0001")
        )
        mean = (sum(Decimal(t["pnl"]) for t in mine) / cost * 100).quantize(Decimal("0.01"))
        assert abs(Decimal(str(r["return_on_cost_pct"])) - mean) <= Decimal("0.01")


def test_the_text_report_is_aligned_and_in_percent(data, capsys):  # noqa: F811
    status, out, _ = _run(
        capsys, "--config", str(CONFIG / "fleece.yaml"), "--compare", str(CONFIG / "catalyst.yaml"),
        "--data", str(data), *CAPITAL,
    )  # fmt: skip
    assert status == 0
    lines = out.splitlines()
    assert lines[1].startswith("sizing: 10% of 100000 capital per entry")
    assert "at most 10% of the day's volume" in lines[1]
    for title, n in (("total return", 3), ("max drawdown ", 3), ("win rate", 2), ("return on", 2)):
        row = next(line for line in lines if line.startswith(title))
        assert row.count("%") == n, row  # each policy (and buy and hold)
    start = lines.index(next(line for line in lines if line.startswith("exits by reason")))
    block = lines[start : lines.index("", start)]
    figures = [line for line in block if line.startswith("  ")]
    assert figures and len({len(line) for line in [block[0], *figures]}) == 1  # aligned
    assert "buy and hold" in lines[3]


def test_buy_and_hold_splits_the_capital_over_the_symbols(data, capsys):  # noqa: F811
    status, out, _ = _run(
        capsys, "--config", str(CONFIG / "fleece.yaml"), "--data", str(data), *CAPITAL, "--json"
    )
    assert status == 0
    hold = json.loads(out)["summary"]["run"]["buy_and_hold"]
    bars = read_bars(data, xnys()).bars
    expected = Decimal(0)
    for symbol_bars in bars.values():
        first, last = symbol_bars[0], symbol_bars[-1]  # every:20d enters on the first session
        shares = (Decimal(100000) / 3 / first.open).to_integral_value(rounding=ROUND_FLOOR)
        shares = max(1, min(shares, (first.volume / 10).to_integral_value(rounding=ROUND_FLOOR)))
        expected += shares * (last.close - first.open)
    assert abs(Decimal(str(hold["total_pnl"])) - expected) < Decimal("0.01")
    assert hold["total_return_pct"] == round(float(expected) / 1000, 2)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--position-pct", "5"], "give --capital too"),
        (["--capital", "-5"], "--capital"),
        (["--capital", "1000", "--position-pct", "150"], "at most 100"),
        (["--capital", "1000", "--qty", "10"], "give one"),
    ],
)
def test_sizing_mistakes_exit_2(data, capsys, args, words):  # noqa: F811
    status, _, err = _run(
        capsys, "--config", str(CONFIG / "fleece.yaml"), "--data", str(data), *args
    )
    assert status == 2 and words in err and "Traceback" not in err


def test_the_plot_compares_on_one_axis(data, tmp_path, capsys):  # noqa: F811
    pytest.importorskip("matplotlib")
    png = tmp_path / "plot.png"
    status, _, err = _run(
        capsys, "--compare", str(CONFIG / "fleece.yaml"), str(CONFIG / "sentinel.yaml"),
        "--data", str(data), *CAPITAL, "--plot", str(png),
    )  # fmt: skip
    assert status == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_hint_works_for_a_checkout(data, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    status, _, err = _run(
        capsys, "--config", str(CONFIG / "fleece.yaml"), "--data", str(data),
        "--plot", str(tmp_path / "p.png"),
    )  # fmt: skip
    assert status == 1 and ".venv/bin/pip install -e '.[plot]'" in err
    assert "posactors[plot]" not in err and not (tmp_path / "p.png").exists()


def test_progress_on_a_terminal_only(data):  # noqa: F811
    from test_simulate_summary import run_on_a_terminal

    args = ["backtest", "--config", str(CONFIG / "fleece.yaml"), "--data", str(data)]
    shown = run_on_a_terminal(*args, "--workers", "1")
    assert "backtest symbols" in shown and "3/3" in shown
    assert "exits by reason" in shown
    quiet = run_on_a_terminal(*args, "--workers", "1", "--json")
    assert "backtest symbols" not in quiet
    assert json.loads(quiet.strip().splitlines()[-1])["summary"]["trades"] > 0
    piped = subprocess.run(
        [sys.executable, "-m", "posactors.cli", *args], capture_output=True, text=True,
        timeout=120, check=False, env={**os.environ},
    )  # fmt: skip
    assert piped.returncode == 0 and "backtest symbols" not in piped.stdout
