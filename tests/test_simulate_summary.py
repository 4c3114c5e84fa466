"""``simulate``'s summary says what is this run's and what is the account's; progress on a TTY."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"


def simulate(*args: str) -> tuple[dict, str]:
    cmd = [sys.executable, "-m", "posactors.cli", "simulate", "--json", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])["summary"], done.stderr


def test_a_resumed_run_reports_its_own_figures_and_the_accounts(tmp_path):
    state = str(tmp_path / "state")
    common = ["--config", str(CONFIG / "fleece.yaml"), "--state", state, "--seed", "3"]
    first, err = simulate("--positions", "30", "--duration", "300", *common)
    assert not first["resumed"] and "continuing" not in err
    assert first["this_run"]["exits"] == first["all_runs"]["exits"] == first["exits"]
    assert sum(first["exits"].values()) == first["closed_positions"] > 0

    second, err = simulate("--positions", "99", "--duration", "300", *common)
    assert second["resumed"]
    assert "continuing the simulated account" in err
    assert "--positions 99 is ignored" in err and "opened with 30" in err
    assert second["positions"] == 30
    assert second["virtual_seconds"] == 300 and second["all_runs"]["virtual_seconds"] == 600
    assert second["virtual_start"] == first["virtual_end"]  # continues from its own clock
    this, every = second["this_run"], second["all_runs"]
    assert every["closed_positions"] == first["closed_positions"] + this["closed_positions"]
    assert every["orders"] == first["orders"] + this["orders"]
    for reason, n in every["exits"].items():
        assert n == first["exits"].get(reason, 0) + this["exits"].get(reason, 0)
    assert second["closed_positions"] == every["closed_positions"]  # documented: all runs


def test_the_text_summary_labels_both_columns(tmp_path):
    state = str(tmp_path / "state")
    args = ["--positions", "10", "--duration", "120", "--state", state]
    args += ["--config", str(CONFIG / "fleece.yaml")]
    simulate(*args)
    cmd = [sys.executable, "-m", "posactors.cli", "simulate", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "this run" in done.stdout and "all runs" in done.stdout
    assert "continued the account" in done.stdout


def test_broker_stops_are_named_and_pennyhunter_says_why_nothing_exited(tmp_path):
    sentinel, _ = simulate(
        "--positions", "20", "--duration", "60", "--config", str(CONFIG / "sentinel.yaml")
    )
    assert sentinel["working_broker_stops"] == sentinel["open_positions"] > 0
    assert sentinel["exits_in_flight"] == 0
    assert sentinel["open_intents"] == sentinel["working_broker_stops"]

    penny, _ = simulate(
        "--positions", "20", "--duration", "60", "--config", str(CONFIG / "pennyhunter.yaml")
    )
    assert penny["exits"] == {}
    reasons = " ".join(penny["no_exit_reasons"])
    assert "window 15:50-15:55 was never reached" in reasons
    assert "trading day 2" in reasons


def run_on_a_terminal(*args: str) -> str:
    """The command with stdout on a pseudo-terminal; what the terminal received."""
    main, child = os.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "posactors.cli", *args],
        stdout=child,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(main)
    text = b"".join(chunks).decode("utf-8", "replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # without colours and cursor moves


def test_a_progress_bar_on_a_terminal_and_never_with_json(tmp_path):
    args = ["simulate", "--positions", "5", "--duration", "120"]
    args += ["--config", str(CONFIG / "default.yaml")]
    shown = run_on_a_terminal(*args)
    assert "/120 virtual s" in shown and "exits (orders filled)" in shown
    quiet = run_on_a_terminal(*args, "--json")
    lines = quiet.strip().splitlines()
    assert len(lines) == 1 and "/120 virtual s" not in quiet  # the JSON line alone
    assert json.loads(lines[0])["summary"]["positions"] == 5
