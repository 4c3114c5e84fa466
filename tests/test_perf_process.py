"""The service's interpreter setting is applied by its entry points only, never on import."""

from __future__ import annotations

import subprocess
import sys

from posactors.runtime.engine import SERVICE_SWITCH_INTERVAL_S, tune_process


def test_importing_the_library_leaves_the_interpreter_alone():
    code = "import sys, posactors.runtime.engine, posactors.cli; print(sys.getswitchinterval())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == 0.005


def test_tune_process_sets_the_interval_and_returns_the_old_one():
    before = sys.getswitchinterval()
    try:
        assert tune_process() == before
        assert abs(sys.getswitchinterval() - SERVICE_SWITCH_INTERVAL_S) < 1e-9
        assert abs(tune_process(0.02) - SERVICE_SWITCH_INTERVAL_S) < 1e-9
    finally:
        sys.setswitchinterval(before)


def test_the_simulate_command_puts_the_interval_back(tmp_path, capsys):
    from posactors.cli import main

    before = sys.getswitchinterval()
    args = ["simulate", "--positions", "2", "--duration", "5", "--state", str(tmp_path), "--json"]
    assert main(args) == 0
    assert sys.getswitchinterval() == before
    assert "summary" in capsys.readouterr().out
