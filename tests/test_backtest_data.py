"""Bad data: reported with file and line, counted, never used; unusable files exit 2."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest

from posactors.backtest.bars import read_bars
from posactors.backtest.engine import Settings
from posactors.backtest.runner import run_backtest
from posactors.calendar import xnys
from posactors.cli import main
from posactors.errors import InputError
from test_backtest_support import HEADER, config_of

BAD = Path(__file__).parent / "data" / "backtest_bad_bars.csv"
EXPECTED_BAD = {
    3: "columns",
    4: "number",
    5: "non_positive",
    7: "not_session",
    8: "inconsistent",
    9: "volume",
    11: "duplicate",  # identical copy of line 10: the first is kept
    12: "duplicate",  # conflicting copies of 2024-03-21: neither is used
    13: "duplicate",
    15: "date",
    17: "symbol",
    18: "number",  # NaN
}


def test_each_bad_row_is_reported_with_its_line_and_kind():
    data = read_bars(BAD, xnys())
    assert {b.line: b.kind for b in data.bad} == EXPECTED_BAD
    assert all(str(b).startswith(f"{BAD}:{b.line}: ") for b in data.bad)
    assert [str(b.session) for b in data.bars["AAA"]] == [
        "2024-03-11",
        "2024-03-15",
        "2024-03-20",
        "2024-03-22",
        "2024-03-26",
    ]
    assert data.rows == 17 and data.bar_count == 5


def test_bad_rows_never_fill_an_order():
    # a -5% stop would fire only on line 13's low of 60, a conflicting duplicate
    result = run_backtest(
        [config_of({"stop_loss": {"pct": 5}})], BAD, "every:1000d", xnys(), Settings(), workers=1
    )
    summary = result.policies[0].summary
    assert summary["trades"] == 0 and summary["positions_open"] == 1
    assert result.data_summary()["bad_rows"] == 12
    assert any("12 bad row(s) of 17" in w for w in result.warnings)


def test_gzip_is_read_by_its_magic_bytes(tmp_path):
    packed = tmp_path / "bars.csv.gz"
    packed.write_bytes(gzip.compress(BAD.read_bytes()))
    assert read_bars(packed, xnys()).bar_count == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "lacks symbol"),
        (b"symbol,date,open,high,low,close\nAAA,2024-03-11,1,1,1,1\n", "lacks volume"),
        (HEADER.encode() + b"AAA,2024-03-16,1,1,1,1,1\n", "no good rows"),
        (gzip.compress(HEADER.encode() * 50)[:40], "unusable data file"),
        (b"\xff\xfe\x00bad", "unusable data file"),
    ],
)
def test_unusable_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bars.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_bars(path, xnys())


def test_cli_exits_2_on_an_unusable_file(tmp_path, capsys):
    path = tmp_path / "bars.csv"
    path.write_text("date,close\n2024-03-11,1\n")
    config = tmp_path / "p.yaml"
    config.write_text("exits: {stop_loss: {pct: 5}}\n")
    assert main(["backtest", "--config", str(config), "--data", str(path)]) == 2
    assert "lacks symbol" in capsys.readouterr().err
    missing = tmp_path / "nope.csv"
    assert main(["backtest", "--config", str(config), "--data", str(missing)]) == 2


def test_quoted_fields_are_read_with_the_csv_module(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + '"AAA","2024-03-11","100","101","99","100","1000"\n')
    bars = read_bars(path, xnys()).bars["AAA"]
    assert bars[0].high == Decimal(101)
