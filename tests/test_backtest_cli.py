"""``posactors backtest`` end to end: entries, output shapes, determinism, exit status."""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from posactors.backtest.entries import load_entries
from posactors.calendar import xnys
from posactors.cli import main
from posactors.errors import InputError
from test_backtest_support import write_bars

CENT = Decimal("0.01")
CONFIG = Path(__file__).resolve().parents[1] / "config"


def _walk_rows(symbol_seed: int, start: date = date(2024, 1, 2), n: int = 60) -> list[tuple]:
    """A deterministic zig-zag of daily bars (no randomness needed)."""
    sessions = xnys().sessions_between(start, date(2024, 12, 31))[:n]
    rows, price = [], Decimal(50 + symbol_seed)
    for k, session in enumerate(sessions):
        move = Decimal((k * 7 + symbol_seed) % 11 - 5) / 100
        close = (price * (1 + move / 4)).quantize(Decimal("0.01"))
        high = max(price, close) * Decimal("1.015")
        low = min(price, close) * Decimal("0.985")
        rows.append(
            (session, price, high.quantize(Decimal("0.01")), low.quantize(Decimal("0.01")), close)
        )
        price = close
    return rows


@pytest.fixture
def data(tmp_path) -> Path:
    """Three symbols, 60 sessions each, in one file."""
    lines = ["symbol,date,open,high,low,close,volume\n"]
    for seed, symbol in enumerate(("AAA", "BBB", "CCC")):
        part = write_bars(tmp_path / f"{symbol}.csv", _walk_rows(seed), symbol)
        lines += part.read_text().splitlines(keepends=True)[1:]
    path = tmp_path / "bars.csv"
    path.write_text("".join(lines))
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["backtest", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_json_ends_with_one_summary_and_metrics_are_consistent(data, capsys):
    status, out, _ = _run(
        capsys, "--config", str(CONFIG / "fleece.yaml"), "--data", str(data), "--json"
    )
    assert status == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[-1])["summary"]
    assert summary["policy"].endswith("fleece.yaml")
    assert summary["positions"] == 9  # every:20d over 60 sessions, 3 symbols
    assert summary["wins"] + summary["losses"] == summary["trades"]
    assert summary["data"]["bars"] == 180 and summary["run"]["entries"] == "every:20d"


def test_compare_puts_one_summary_per_policy_in_the_last_object(data, tmp_path, capsys):
    trades = tmp_path / "trades.csv"
    status, out, _ = _run(
        capsys,
        "--compare",
        str(CONFIG / "fleece.yaml"),
        str(CONFIG / "catalyst.yaml"),
        "--data",
        str(data),
        "--entries",
        "random:12:3",
        "--json",
        "--json-trades",
        "--trades",
        str(trades),
    )
    assert status == 0
    objects = [json.loads(line) for line in out.strip().splitlines()]
    summary = objects[-1]["summary"]
    assert [Path(p["policy"]).name for p in summary["policies"]] == ["fleece.yaml", "catalyst.yaml"]
    assert all(p["positions"] == 12 for p in summary["policies"])  # the very same entries
    per_trade = objects[:-1]
    assert len(per_trade) == sum(p["trades"] for p in summary["policies"])
    with trades.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "policy",
        "symbol",
        "entry_time",
        "exit_time",
        "qty",
        "entry_price",
        "exit_price",
        "reason",
        "pnl",
    ]
    assert len(rows) - 1 == len(per_trade)


def test_same_inputs_identical_output_whatever_the_workers(data, tmp_path, capsys):
    outputs = []
    for workers in ("1", "2", "2"):
        trades = tmp_path / f"t{len(outputs)}.csv"
        status, out, _ = _run(
            capsys,
            "--config",
            str(CONFIG / "sentinel.yaml"),
            "--data",
            str(data),
            "--entries",
            "every:5d",
            "--workers",
            workers,
            "--json",
            "--trades",
            str(trades),
            "--slippage-pct",
            "0.05",
            "--commission",
            "1",
        )
        assert status == 0
        outputs.append((out, trades.read_text()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_text_report_with_per_symbol(data, capsys):
    status, out, _ = _run(
        capsys, "--config", str(CONFIG / "catalyst.yaml"), "--data", str(data), "--per-symbol"
    )
    assert status == 0
    assert "win rate" in out and "max drawdown" in out and "per symbol:" in out
    assert "max_hold" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--entries", "every:0d"],
        ["--entries", "random:0:1"],
        ["--entries", "every:x"],
        ["--slippage-pct", "-1"],
        ["--qty", "0"],
        ["--workers", "0"],
        ["--entries", "/nonexistent/entries.csv"],
    ],
)
def test_bad_arguments_exit_2(data, capsys, args):
    status, _, err = _run(
        capsys, "--config", str(CONFIG / "fleece.yaml"), "--data", str(data), *args
    )
    assert status == 2 and err.startswith("error: ")


def test_bad_entries_file_names_the_line(data, tmp_path, capsys):
    entries = tmp_path / "e.csv"
    entries.write_text("symbol,time,qty\nAAA,2024-01-02T09:30:00-05:00,100\nAAA,yesterday,5\n")
    status, _, err = _run(
        capsys,
        "--config",
        str(CONFIG / "fleece.yaml"),
        "--data",
        str(data),
        "--entries",
        str(entries),
    )
    assert status == 2 and f"{entries}:3" in err


def test_entries_for_unknown_symbols_are_reported_not_managed(data, tmp_path, capsys):
    entries = tmp_path / "e.csv"
    entries.write_text("symbol,time,qty\nZZZ,2024-01-02T09:30:00-05:00,100\n")
    status, out, err = _run(
        capsys,
        "--config",
        str(CONFIG / "fleece.yaml"),
        "--data",
        str(data),
        "--entries",
        str(entries),
        "--json",
    )
    assert status == 0 and "ZZZ has no bars" in err
    assert json.loads(out)["summary"]["run"]["entries_skipped"] == 1


def test_generators_are_seeded_and_spaced(data):
    from posactors.backtest.bars import read_bars

    bars = read_bars(data, xnys())
    every = load_entries("every:20d", bars, xnys())
    aaa = [e.time.date().isoformat() for e in every if e.symbol == "AAA"]
    sessions = [b.session.isoformat() for b in bars.bars["AAA"]]
    assert aaa == sessions[::20]
    first = load_entries("random:10:42", bars, xnys())
    assert first == load_entries("random:10:42", bars, xnys())
    assert first != load_entries("random:10:43", bars, xnys())
    assert len({(e.symbol, e.time) for e in first}) == 10
    with pytest.raises(InputError):
        load_entries("random:1000:1", bars, xnys())


def test_plot_draws_one_row_per_policy(data, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "plot.png"
    status, _, _ = _run(
        capsys,
        "--compare",
        str(CONFIG / "fleece.yaml"),
        str(CONFIG / "sentinel.yaml"),
        "--data",
        str(data),
        "--plot",
        str(png),
    )
    assert status == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_entry_outside_the_calendar_is_refused(data, tmp_path, capsys):
    entries = tmp_path / "e.csv"
    entries.write_text("symbol,time,qty\nAAA,1990-01-02T09:30:00-05:00,100\n")
    status, _, err = _run(
        capsys,
        "--config",
        str(CONFIG / "fleece.yaml"),
        "--data",
        str(data),
        "--entries",
        str(entries),
    )
    assert status == 2 and f"{entries}:2" in err
