"""Write examples/daily_bars.csv: made-up daily bars for trying `posactors backtest`.

Six invented symbols, XNYS sessions of 2021-2023, a seeded random walk with a volatility
cluster; not market data. Run: .venv/bin/python examples/make_daily_bars.py
"""

from __future__ import annotations

import math
import random
from datetime import date
from pathlib import Path

from posactors.calendar import xnys

SYMBOLS = {"ALFA": 42.0, "BRVO": 118.0, "CHRL": 9.5, "DLTA": 260.0, "ECHO": 71.0, "FXTR": 23.0}


def main() -> None:
    rng = random.Random(2024)
    sessions = xnys().sessions_between(date(2021, 1, 4), date(2023, 12, 29))
    lines = ["symbol,date,open,high,low,close,volume"]
    for symbol, price in SYMBOLS.items():
        drift = rng.uniform(-0.0002, 0.0008)
        for k, session in enumerate(sessions):
            storm = 2.2 if 300 <= k <= 360 else 1.0  # a volatile stretch, as in real markets
            sigma = 0.018 * storm
            open_ = price * math.exp(rng.gauss(0, sigma / 3))
            close = open_ * math.exp(rng.gauss(drift, sigma))
            high = max(open_, close) * math.exp(abs(rng.gauss(0, sigma / 2)))
            low = min(open_, close) * math.exp(-abs(rng.gauss(0, sigma / 2)))
            volume = int(rng.lognormvariate(13, 0.5) * storm)
            lines.append(
                f"{symbol},{session.isoformat()},{open_:.2f},{high:.2f},{low:.2f},{close:.2f},{volume}"
            )
            price = close
    Path(__file__).with_name("daily_bars.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
