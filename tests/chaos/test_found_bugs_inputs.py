"""Bad outside input the fuzzers found (test_fuzz_inputs.py), as regression tests.

Each gave a traceback (exit 1, or a hang) where SPEC section 4 asks for exit 2 and a
message.
"""

from __future__ import annotations

import pykka
import pytest

from posactors.cli import main


def ticks(tmp_path, body: bytes):
    path = tmp_path / "ticks.csv"
    path.write_bytes(b"time,price,volume\n" + body)
    return path


def replay_status(tmp_path, path) -> int:
    config = tmp_path / "c.yaml"
    config.write_text("exits: {stop_loss: {pct: 5}}\n")
    argv = ["replay", "--config", str(config), "--position", "AAPL:10@100", "--ticks", str(path)]
    return main(argv)


def test_a_nan_volume_in_ticks_is_skipped_or_refused(tmp_path):
    """replay() does ``max(tick.volume, ZERO)``: ordering a Decimal NaN raises
    InvalidOperation (a traceback, exit 1) instead of skipping-and-counting the bar or
    refusing the row with its line number (exit 2)."""
    path = ticks(tmp_path, b"2024-03-11T10:00:00-04:00,100,NaN\n")
    assert replay_status(tmp_path, path) in (0, 2)


def test_a_file_that_is_not_utf8_is_bad_input(tmp_path):
    """csv_input.checked_rows decodes as it reads; a byte that is not UTF-8 raises
    UnicodeDecodeError (a traceback, exit 1) instead of an InputError naming the file and
    line (exit 2). The same reader serves backtest's --entries files."""
    path = ticks(tmp_path, b"2024-03-11T10:00:00-04:00,100,\xff\n")
    assert replay_status(tmp_path, path) == 2


@pytest.mark.parametrize("duration", ["nan", "inf"])
def test_simulate_rejects_a_non_finite_duration(tmp_path, duration):
    """``args.duration <= 0`` lets NaN and inf through; timedelta() then raises after the
    engine started, outside the try/finally that stops it: a traceback, and the process
    never exits (pykka's actor threads are not daemons)."""
    argv = ["simulate", "--positions", "1", "--duration", duration, "--state", str(tmp_path)]
    try:
        assert main(argv) == 2
    finally:
        pykka.ActorRegistry.stop_all()


def test_simulate_on_the_state_of_another_seed_is_bad_input(tmp_path):
    """SimExchange raises ValueError ("created with seed 1, not 2"), which main() does not
    catch: a clear message, but as a traceback with exit 1 rather than exit 2."""
    argv = ["simulate", "--positions", "1", "--duration", "1", "--state", str(tmp_path)]
    assert main([*argv, "--seed", "1", "--json"]) == 0
    assert main([*argv, "--seed", "2", "--json"]) == 2


def test_an_unusable_state_directory_is_bad_input_naming_it(tmp_path, capsys, monkeypatch):
    """A --state that is a file, cannot be made, or cannot be written: exit 2 before
    anything starts, naming --state and its value (was: a traceback from mkdir)."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    base = ["simulate", "--positions", "1", "--duration", "1", "--state"]
    assert main([*base, str(afile)]) == 2
    assert main([*base, str(afile / "below")]) == 2
    assert afile.read_text() == "mine"
    monkeypatch.setattr("posactors.cli.os.access", lambda *_: False)  # root writes anyway
    assert main([*base, str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert f"--state {afile}: expected a directory" in err
    assert f"--state {afile / 'below'}: cannot create it" in err
    assert "not writable" in err


def test_a_state_written_by_a_newer_posactors_is_refused_with_exit_2(tmp_path, capsys):
    from posactors.store import SCHEMA_VERSION, StateStore

    with StateStore(tmp_path) as store:
        store.write([("meta", "schema_version", SCHEMA_VERSION + 1)])
    before = (tmp_path / "data.mdb").read_bytes()
    argv = ["simulate", "--positions", "1", "--duration", "1", "--state", str(tmp_path)]
    try:
        assert main(argv) == 2
    finally:
        pykka.ActorRegistry.stop_all()
    assert "newer posactors" in capsys.readouterr().err
    assert (tmp_path / "data.mdb").read_bytes() == before
