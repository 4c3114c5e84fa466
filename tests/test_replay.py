"""``posactors replay`` end to end: each preset's signature behaviour, bad input, output shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posactors.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES, CONFIG = ROOT / "examples", ROOT / "config"


def replay_json(capsys, preset: str, position: str, ticks: Path | str, *extra: str):
    status = main(
        [
            "replay",
            "--config",
            str(CONFIG / f"{preset}.yaml"),
            "--position",
            position,
            "--ticks",
            str(ticks),
            "--json",
            *extra,
        ]
    )
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    return status, lines[:-1], lines[-1]["summary"] if lines else None


def test_fleece_takes_profit_at_two_percent_and_skips_bad_quotes(capsys):
    status, exits, summary = replay_json(
        capsys, "fleece", "AAPL:100@100", EXAMPLES / "fleece_ticks.csv"
    )
    assert status == 0
    assert exits == [
        {
            "time": "2024-03-12T10:00:30-04:00",
            "symbol": "AAPL",
            "side": "sell",
            "qty": 100,
            "type": "market",
            "reason": "take_profit",
            "client_order_id": exits[0]["client_order_id"],
            "fill_price": 102.05,
        }
    ]
    assert exits[0]["client_order_id"].startswith("pa-") and len(exits[0]["client_order_id"]) <= 48
    assert (summary["remaining_qty"], summary["realized_pnl"], summary["orders"]) == (0, 205, 1)
    assert summary["bad_quotes"] == 2  # a zero price and a crossed book


def test_fleece_short_stops_out_at_minus_one_percent(capsys):
    _, exits, summary = replay_json(
        capsys, "fleece", "AAPL:-100@100", EXAMPLES / "fleece_ticks.csv"
    )
    assert [(e["side"], e["reason"], e["fill_price"]) for e in exits] == [
        ("buy", "stop_loss", 101.2)
    ]
    assert summary["realized_pnl"] == -120


def test_catalyst_closes_at_twenty_four_hours(capsys):
    _, exits, summary = replay_json(
        capsys, "catalyst", "MRNA:50@20", EXAMPLES / "catalyst_ticks.csv"
    )
    assert [(e["time"], e["reason"], e["qty"]) for e in exits] == [
        ("2024-03-12T10:00:00-04:00", "max_hold", 50)
    ]
    assert summary["realized_pnl"] == 65


def test_sentinel_staircase_locks_gain_while_target_waits_for_approval(capsys):
    _, exits, summary = replay_json(
        capsys, "sentinel", "NVDA:30@50", EXAMPLES / "sentinel_ticks.csv"
    )
    # +16.2% asked for approval (never given), then the +8% lock at 54 was hit at 53.90
    assert [(e["reason"], e["fill_price"]) for e in exits] == [("staircase", 53.9)]
    assert summary["effective_stop"] == 54 and summary["remaining_qty"] == 0


def test_sentinel_target_pending_while_open(capsys, tmp_path):
    ticks = tmp_path / "t.csv"
    ticks.write_text(
        (EXAMPLES / "sentinel_ticks.csv").read_text().splitlines()[0]
        + "\n"
        + "\n".join((EXAMPLES / "sentinel_ticks.csv").read_text().splitlines()[1:6])
        + "\n"
    )
    _, exits, summary = replay_json(capsys, "sentinel", "NVDA:30@50", ticks)
    assert exits == [] and summary["pending_approval"].endswith(":tp")


def test_pennyhunter_two_tiers_one_per_day(capsys):
    _, exits, summary = replay_json(
        capsys, "pennyhunter", "PENY:200@4", EXAMPLES / "pennyhunter_ticks.csv"
    )
    assert [(e["time"], e["reason"], e["qty"]) for e in exits] == [
        ("2024-03-11T15:50:00-04:00", "tier:tier1", 100),
        ("2024-03-12T10:31:00-04:00", "tier:tier2", 80),
    ]
    assert summary["remaining_qty"] == 20 and summary["tiers_done"] == ["tier1", "tier2"]


def test_replay_is_deterministic(capsys):
    first = replay_json(capsys, "pennyhunter", "PENY:200@4", EXAMPLES / "pennyhunter_ticks.csv")
    second = replay_json(capsys, "pennyhunter", "PENY:200@4", EXAMPLES / "pennyhunter_ticks.csv")
    assert first == second


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("yesterday,100", ":3: time 'yesterday' is not ISO 8601"),
        ("2024-03-12T10:00:00,100", ":3: time '2024-03-12T10:00:00' has no UTC offset"),
        ("2024-03-12T10:00:05-04:00,abc", ":3: price 'abc' is not a number"),
        ("2024-03-12T09:00:00-04:00,100", ":3: time 2024-03-12T09:00:00-04:00 is earlier"),
    ],
)
def test_a_bad_row_refuses_the_file_with_its_line(capsys, tmp_path, row, message):
    ticks = tmp_path / "bad.csv"
    ticks.write_text(f"time,price\n2024-03-12T10:00:00-04:00,100\n{row}\n")
    status = main(
        [
            "replay",
            "--config",
            str(CONFIG / "fleece.yaml"),
            "--position",
            "AAPL:1@100",
            "--ticks",
            str(ticks),
        ]
    )
    assert status == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("price", ["0", "-3", "nan", "inf", "-inf"])
def test_a_bad_quote_row_is_skipped_and_counted(capsys, tmp_path, price):
    ticks = tmp_path / "t.csv"
    ticks.write_text(
        f"time,price\n2024-03-12T10:00:00-04:00,100\n2024-03-12T10:00:01-04:00,{price}\n"
    )
    status, exits, summary = replay_json(capsys, "fleece", "AAPL:1@100", ticks)
    assert status == 0 and exits == [] and summary["bad_quotes"] == 1


@pytest.mark.parametrize("position", ["AAPL", "AAPL:0@100", "AAPL:10@0", "aapl:10@100", "AAPL:x@1"])
def test_a_bad_position_argument_exits_2(capsys, position):
    status = main(
        [
            "replay",
            "--config",
            str(CONFIG / "fleece.yaml"),
            "--position",
            position,
            "--ticks",
            str(EXAMPLES / "fleece_ticks.csv"),
        ]
    )
    assert status == 2 and "--position" in capsys.readouterr().err


def test_bad_header_and_missing_file_exit_2(capsys, tmp_path):
    ticks = tmp_path / "t.csv"
    ticks.write_text("when,price\n")
    for path in (ticks, tmp_path / "missing.csv"):
        status = main(
            [
                "replay",
                "--config",
                str(CONFIG / "fleece.yaml"),
                "--position",
                "A:1@1",
                "--ticks",
                str(path),
            ]
        )
        assert status == 2
    err = capsys.readouterr().err
    assert "expected time,price" in err and "cannot read" in err


def test_config_check_presets_pass_and_a_bad_file_exits_2(capsys, tmp_path):
    presets = [
        str(CONFIG / f"{n}.yaml")
        for n in ("default", "pennyhunter", "fleece", "sentinel", "catalyst")
    ]
    assert main(["config", "check", *presets]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("exits:\n  stop_loss: {pct: -5}\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "exits.stop_loss.pct" in err and "-5" in err


def test_config_check_shows_the_effective_policy_per_symbol(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("exits:\n  stop_loss: {pct: 8}\noverrides:\n  AAPL: {stop_loss: {pct: 5}}\n")
    assert main(["config", "check", "--json", "--show", str(cfg)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policies"]["*"]["stop_loss"]["pct"] == 8
    assert doc["policies"]["AAPL"]["stop_loss"]["pct"] == 5
