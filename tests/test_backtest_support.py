"""Helpers for the backtest tests: small bar files, one-call runs, policies as YAML."""

from __future__ import annotations

from pathlib import Path

import yaml

from posactors.backtest.engine import Settings
from posactors.backtest.runner import BacktestResult, run_backtest
from posactors.calendar import xnys
from posactors.policy import parse_config

HEADER = "symbol,date,open,high,low,close,volume\n"


def write_bars(path: Path, rows: list[tuple], symbol: str = "AAA") -> Path:
    """``rows``: (date, open, high, low, close[, volume]) with the volume 1000 by default."""
    lines = [HEADER]
    for row in rows:
        day, o, h, lo, c, *rest = row
        volume = rest[0] if rest else 1000
        lines.append(f"{symbol},{day},{o},{h},{lo},{c},{volume}\n")
    path.write_text("".join(lines))
    return path


def write_entries(path: Path, rows: list[str]) -> Path:
    path.write_text("symbol,time,qty,price\n" + "".join(f"{r}\n" for r in rows))
    return path


def config_of(exits: dict) -> tuple[str, object]:
    config, _ = parse_config({"exits": exits}, "test")
    return ("test", config)


def run(
    tmp_path: Path,
    rows: list[tuple],
    exits: dict,
    entries: list[str] | str = "every:1000d",
    workers: int = 1,
    **settings,
) -> BacktestResult:
    """Backtest one policy on hand-made bars of symbol AAA."""
    data = write_bars(tmp_path / "bars.csv", rows)
    spec = entries if isinstance(entries, str) else str(write_entries(tmp_path / "e.csv", entries))
    return run_backtest(
        [config_of(exits)], data, spec, xnys(), Settings(**settings), workers=workers
    )


def trades(result: BacktestResult, k: int = 0) -> list[tuple]:
    """(exit time in New York as HH:MM on YYYY-MM-DD, reason, qty, exit price, pnl)."""
    return [
        (t.exit_time.strftime("%Y-%m-%d %H:%M"), t.reason, t.qty, t.exit_price, t.pnl)
        for t in result.policies[k].trades
    ]


def preset(name: str) -> dict:
    root = Path(__file__).resolve().parents[1] / "config"
    return yaml.safe_load((root / f"{name}.yaml").read_text())
