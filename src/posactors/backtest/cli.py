"""``posactors backtest``: exit policies on daily bars, with metrics, trades and plots.

Exit status: 0 success, 2 bad input (config, arguments, an unusable data file, a
bad entries file), 1 anything else (e.g. ``--plot`` without matplotlib).
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from posactors.errors import InputError
from posactors.preflight import writable_file

EXIT_OK, EXIT_FAILURE = 0, 1


def register(commands: Any) -> None:
    """Add the ``backtest`` subcommand to the ``posactors`` subparsers."""
    bt = commands.add_parser(
        "backtest",
        help="exit policies on daily bars: metrics, trades, plots",
        description="Backtest exit policies on daily bars through the live engine's rules.",
    )
    bt.add_argument("--config", metavar="FILE", help="the policy (or the first with --compare)")
    bt.add_argument("--compare", nargs="+", metavar="FILE", help="more policies, same entries")
    bt.add_argument("--data", required=True, metavar="FILE.csv[.gz]", help="daily bars")
    bt.add_argument(
        "--entries",
        default="every:20d",
        metavar="SPEC",
        help="FILE.csv (symbol,time,qty[,price]), every:Nd or random:N:SEED (default every:20d)",
    )
    bt.add_argument(
        "--qty", metavar="N", help="shares per generated entry (default 100; see --capital)"
    )
    bt.add_argument(
        "--capital",
        metavar="USD",
        help="size every entry by money: --position-pct of this capital (whole shares); "
        "returns and drawdown are then also in %% of it",
    )
    bt.add_argument(
        "--position-pct",
        metavar="PCT",
        help="with --capital: money per position in %% of the capital (default 10)",
    )
    bt.add_argument(
        "--intrabar",
        choices=("conservative", "optimistic"),
        default="conservative",
        help="order of a bar's extremes: adverse first (default) or favourable first",
    )
    bt.add_argument(
        "--path-step-pct",
        metavar="PCT",
        help="also price points between the bar's points, at most PCT%% of the open apart",
    )
    bt.add_argument("--slippage-pct", default="0", metavar="PCT", help="against each fill")
    bt.add_argument("--commission", default="0", metavar="USD", help="per exit order")
    bt.add_argument("--commission-per-share", default="0", metavar="USD", help="per share")
    bt.add_argument(
        "--approvals",
        choices=("grant", "never"),
        default="grant",
        help="take-profits that need approval: granted at once (default) or never",
    )
    bt.add_argument("--symbols", metavar="A,B,...", help="only these symbols")
    bt.add_argument("--per-symbol", action="store_true", help="metrics per symbol too")
    bt.add_argument("--trades", metavar="FILE.csv", help="write every exit here")
    bt.add_argument("--plot", metavar="FILE.png", help="equity curve and exits by reason")
    bt.add_argument("--workers", type=int, default=2, metavar="N", help="processes (default 2)")
    bt.add_argument("--json", action="store_true", help="one summary JSON object last")
    bt.add_argument("--json-trades", action="store_true", help="with --json: trades first")
    bt.set_defaults(handler=cmd_backtest)


def _decimal(text: str, option: str, *, positive: bool = False) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InputError(f"{option} {text!r}: expected a number") from None
    if not value.is_finite() or value < 0 or (positive and value == 0):
        bound = "greater than 0" if positive else "at least 0"
        raise InputError(f"{option} {text!r}: expected a number {bound}")
    return value


def _sizing(args: argparse.Namespace, settings: Any) -> tuple[Decimal | None, Any]:
    """``--capital`` and ``--position-pct``: the capital and the money per position."""
    from dataclasses import replace

    if args.capital is None:
        if args.position_pct is not None:
            raise InputError(
                f"--position-pct {args.position_pct}: give --capital too (the money it is a "
                "percent of)"
            )
        return None, settings
    if args.qty is not None:
        raise InputError("--qty and --capital: give one (shares per entry, or money per entry)")
    capital = _decimal(args.capital, "--capital", positive=True)
    pct = _decimal(args.position_pct or "10", "--position-pct", positive=True)
    if pct > 100:
        raise InputError(f"--position-pct {args.position_pct}: expected at most 100")
    return capital, replace(settings, notional=capital * pct / 100)


class BacktestProgress:
    """A progress bar over the symbols, on a terminal only; starts no thread (workers fork)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("[bold]backtest[/] symbols"),
            BarColumn(),
            MofNCompleteColumn(),
            auto_refresh=False,
            transient=True,
        )
        self.task = None

    def update(self, done: int, total: int) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("symbols", total=total)
        self.bar.update(self.task, completed=done)
        self.bar.refresh()

    def close(self) -> None:
        if self.task is not None:
            self.bar.stop()


def _labels(paths: list[str]) -> list[str]:
    """The file names as given; a file given twice gets ``#2``, ``#3``."""
    out: list[str] = []
    for path in paths:
        label, n = path, 2
        while label in out:
            label, n = f"{path}#{n}", n + 1
        out.append(label)
    return out


def cmd_backtest(args: argparse.Namespace) -> int:
    """Run the backtest and print the report (text, or JSON with ``--json``)."""
    from posactors.backtest.engine import Settings
    from posactors.backtest.plot import check_plotting, plot
    from posactors.backtest.report import json_summary, text_report, trade_record, write_trades
    from posactors.backtest.runner import run_backtest
    from posactors.calendar import xnys
    from posactors.output import emit_json
    from posactors.policy import load_config

    paths = ([args.config] if args.config else []) + (args.compare or [])
    if not paths:
        raise InputError("backtest: give --config FILE, --compare FILE..., or both")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: expected at least 1")
    if args.slippage_pct and _decimal(args.slippage_pct, "--slippage-pct") >= 100:
        raise InputError(f"--slippage-pct {args.slippage_pct}: expected less than 100")
    settings = Settings(
        intrabar=args.intrabar,
        step_pct=(
            _decimal(args.path_step_pct, "--path-step-pct", positive=True)
            if args.path_step_pct
            else None
        ),
        slippage_pct=_decimal(args.slippage_pct, "--slippage-pct"),
        commission_per_order=_decimal(args.commission, "--commission"),
        commission_per_share=_decimal(args.commission_per_share, "--commission-per-share"),
        approvals=args.approvals,
    )
    qty = _decimal(args.qty or "100", "--qty", positive=True)
    capital, settings = _sizing(args, settings)
    symbols = None
    if args.symbols:
        symbols = sorted({s.strip() for s in args.symbols.split(",") if s.strip()})
    for option, value in (("--trades", args.trades), ("--plot", args.plot)):
        if value is not None:
            writable_file(option, value)  # found before the run, not after it
    if args.plot:
        try:
            check_plotting()
        except ImportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    configs = []
    for label, path in zip(_labels(paths), paths, strict=True):
        config, warnings = load_config(path)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        configs.append((label, config))

    progress = BacktestProgress() if not args.json and sys.stdout.isatty() else None
    result = run_backtest(
        configs,
        Path(args.data),
        args.entries,
        xnys(),
        settings,
        qty=qty,
        symbols=symbols,
        workers=args.workers,
        with_per_symbol=args.per_symbol,
        capital=capital,
        progress=progress.update if progress else None,
    )
    if progress:
        progress.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.trades:
        write_trades(Path(args.trades), result)
    if args.plot:
        plot(Path(args.plot), result)
    if args.json:
        if args.json_trades:
            compare = len(result.policies) > 1
            for policy in result.policies:
                for trade in policy.trades:
                    emit_json(trade_record(trade, policy.label if compare else None))
        emit_json({"summary": json_summary(result)})
    else:
        print(text_report(result))
    return EXIT_OK
