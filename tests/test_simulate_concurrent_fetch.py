"""``posactors simulate`` stays the same run for a seed when a poll's chunks are fetched
concurrently (chunks of 7 symbols, 4 in flight: quotes, and bars for a volume rule)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from test_simulate import ROOT, simulate

VOLUME_TIER = {
    "name": "volume",
    "sell_pct": 50,
    "gain_pct": {"min": 0.5},
    "volume_spike": {"ratio": 1.5, "lookback_bars": 10},
    "min_shares": 1,
}


@pytest.mark.parametrize("bars", [False, True], ids=["quotes", "quotes-and-bars"])
def test_same_seed_same_exits_with_concurrent_chunks(tmp_path: Path, bars: bool):
    config = yaml.safe_load((ROOT / "config" / "fleece.yaml").read_text())
    config["market_data"] = {"batch_size": 7, "max_concurrent_requests": 4}
    if bars:
        config["exits"]["tiers"] = [VOLUME_TIER]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["--positions", "40", "--duration", "600", "--seed", "11", "--config", str(path)]
    first = simulate(*args, "--state", str(tmp_path / "a"))
    second = simulate(*args, "--state", str(tmp_path / "b"))
    assert first["exits"] and first["exits"] == second["exits"]
    assert first["realized_pnl"] == second["realized_pnl"]
    assert first["orders"] == second["orders"] > 0
