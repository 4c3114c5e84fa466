"""A user's mistake gets a message and exit 2, never a traceback, on every command.

The cases a new user met (issue 16): a metrics port in use, ``simulate --log`` into a
missing folder or onto a folder, ``inspect ... | head -1``, ``tools/inspect`` run by a
Python without the project's dependencies, ``config check --json`` on an invalid file;
then fuzzed arguments for every command.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posactors.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
INSPECT = ROOT / "tools" / "inspect"
NO_KEYS = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``posactors ARGV`` in this process: (status, stdout, stderr), argparse's exit included."""
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8") for _ in range(2))  # .buffer
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    texts = []
    for stream in (out, err):
        stream.flush()
        stream.seek(0)
        texts.append(stream.read())
    return code, texts[0], texts[1]


def assert_user_mistake(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_run_finds_a_metrics_port_in_use_before_anything_starts(tmp_path, busy_port):
    state = tmp_path / "state"
    argv = ["run", "--config", str(CONFIG / "default.yaml"), "--state", str(state)]
    with mock.patch.dict(os.environ, {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}):
        code, _, err = run_cli([*argv, "--metrics-port", str(busy_port)])
    assert_user_mistake(code, err, f"--metrics-port {busy_port}", "already in use")
    assert not state.exists()  # nothing started, nothing written
    assert "service_stopped" not in err


@pytest.mark.parametrize("port", ["0", "70000", "-5"])
def test_run_refuses_a_port_out_of_range(tmp_path, port):
    argv = ["run", "--config", str(CONFIG / "default.yaml"), "--state", str(tmp_path / "s")]
    code, _, err = run_cli([*argv, "--metrics-port", port])
    assert_user_mistake(code, err, "expected a port, 1-65535")


def test_simulate_log_into_a_missing_folder_or_onto_a_folder(tmp_path):
    base = ["simulate", "--positions", "1", "--duration", "1", "--state", str(tmp_path / "s")]
    code, _, err = run_cli([*base, "--log", str(tmp_path / "nope" / "run.log")])
    assert_user_mistake(code, err, "--log", "does not exist")
    code, _, err = run_cli([*base, "--log", str(tmp_path)])
    assert_user_mistake(code, err, "--log", "found a folder")
    assert not (tmp_path / "s").exists()  # refused before the engine made its state


@pytest.mark.parametrize("option", ["--plot", "--trades"])
def test_backtest_output_into_a_missing_folder_is_refused_before_the_run(tmp_path, option):
    argv = ["backtest", "--config", str(CONFIG / "fleece.yaml")]
    argv += ["--data", str(ROOT / "examples" / "daily_bars.csv")]
    code, _, err = run_cli([*argv, option, str(tmp_path / "nope" / "out")])
    assert_user_mistake(code, err, option, "does not exist")


def test_config_check_json_prints_a_result_for_an_invalid_file_too(tmp_path):
    bad, good = tmp_path / "bad.yaml", tmp_path / "noexits.yaml"
    bad.write_text("exits:\n  stop_loss: {pct: -5}\n")
    good.write_text("exits:\n  trigger: last\n")
    code, out, _ = run_cli(["config", "check", "--json", str(good), str(bad)])
    assert code == 2
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["ok"] for d in docs] == [True, False]
    assert "exits.stop_loss.pct" in docs[1]["errors"][0]
    assert docs[0]["warnings"][0].count("noexits.yaml") == 1


def test_config_check_warning_names_the_file_once_and_show_prints_yaml(tmp_path):
    noexits = tmp_path / "noexits.yaml"
    noexits.write_text("exits:\n  trigger: last\noverrides:\n  AAPL: {stop_loss: {pct: 5}}\n")
    code, out, err = run_cli(["config", "check", "--show", str(noexits)])
    assert code == 0
    warning = next(line for line in err.splitlines() if line.startswith("warning:"))
    assert warning.count("noexits.yaml") == 1
    assert "effective policy:" in out and "  AAPL:\n" in out and "      pct: 5\n" in out
    assert "{'" not in out  # not a Python dict


def test_config_schema_is_json_schema_of_the_config():
    code, out, err = run_cli(["config", "schema"])
    assert code == 0, err
    schema = json.loads(out)
    assert schema["type"] == "object" and "exits" in schema["properties"]
    assert schema["additionalProperties"] is False


@pytest.fixture(scope="module")
def big_state(tmp_path_factory) -> Path:
    """A simulated account of 150 positions: more JSON than a pipe holds."""
    state = tmp_path_factory.mktemp("big") / "state"
    argv = ["simulate", "--positions", "150", "--duration", "2", "--state", str(state)]
    argv += ["--config", str(CONFIG / "default.yaml"), "--json"]
    code, _, err = run_cli(argv)
    assert code == 0, err
    return state


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "posactors.cli", "inspect"], [sys.executable, str(INSPECT)]],
    ids=["posactors inspect", "tools/inspect"],
)
def test_inspect_into_a_pipe_closed_early_ends_quietly(big_state, command):
    """``... | head -1``: the reader goes away; no BrokenPipeError, no traceback."""
    proc = subprocess.Popen(
        [*command, "--state", str(big_state), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_posactors_inspect_is_the_same_as_tools_inspect(big_state):
    code, out, err = run_cli(["inspect", "--state", str(big_state), "SAAAA"])
    assert code == 0, err
    script = subprocess.run(
        [sys.executable, str(INSPECT), "--state", str(big_state), "SAAAA"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0 and script.stdout == out
    assert out.startswith("SAAAA ")
    code, _, err = run_cli(["inspect", "--state", str(big_state / "nope")])
    assert_user_mistake(code, err, "no state directory")


def test_tools_inspect_without_the_dependencies_says_how_to_run_it(big_state):
    """A Python without lmdb (here: no site-packages) and no way to start the venv's."""
    env = {**os.environ, "POSACTORS_INSPECT_REEXEC": "1"}
    result = subprocess.run(
        [sys.executable, "-S", str(INSPECT), "--state", str(big_state)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert_user_mistake(result.returncode, result.stderr, "posactors inspect", "pip install")
    assert "ModuleNotFoundError" not in result.stderr


def test_tools_inspect_from_another_python_starts_the_checkouts_venv(big_state):
    """``./tools/inspect`` as the README shows it: the system Python, the checkout's venv
    (CI and the README make it at .venv; without one, the message says how)."""
    venv = ROOT / ".venv" / "bin" / "python"
    result = subprocess.run(
        [sys._base_executable, "-S", str(INSPECT), "--state", str(big_state), "SAAAA"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "POSACTORS_INSPECT_REEXEC"},
        check=False,
    )
    if venv.exists():
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("SAAAA ")
    else:
        assert_user_mistake(result.returncode, result.stderr, "pip install")


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch):
    """Not the user's doing: exit 1, a message, the traceback only with POSACTORS_DEBUG."""

    def broken(args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("posactors.cli.cmd_config_schema", broken)
    monkeypatch.delenv("POSACTORS_DEBUG", raising=False)
    code, _, err = run_cli(["config", "schema"])
    assert code == 1 and "RuntimeError: disk on fire" in err and "Traceback" not in err
    monkeypatch.setenv("POSACTORS_DEBUG", "1")
    code, _, err = run_cli(["config", "schema"])
    assert code == 1 and "Traceback" in err


# --- fuzzed arguments: every command, values a person might type by mistake
WEIRD = st.one_of(
    st.sampled_from(
        ["", "-1", "0", "nan", "inf", "1e400", "abc", "/", "/nonexistent/x", ".", "--", "-h"]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
)
FLAGS = {
    "run": ["--config", "--state", "--metrics-port"],
    "simulate": ["--positions", "--duration", "--seed", "--config", "--state", "--log"],
    "replay": ["--config", "--position", "--ticks", "--opened"],
    "backtest": ["--config", "--data", "--entries", "--qty", "--capital", "--position-pct"],
    "approve": ["--state"],
    "config check": ["--symbol"],
    "config schema": [],
    "inspect": ["--state"],
}


@st.composite
def mistaken_argv(draw) -> list[str]:
    command = draw(st.sampled_from(sorted(FLAGS)))
    argv = command.split()
    for flag in draw(st.lists(st.sampled_from(FLAGS[command] or ["--x"]), max_size=4)):
        argv += [flag, draw(WEIRD)]
    argv += draw(st.lists(WEIRD, max_size=2))
    return argv


@given(argv=mistaken_argv())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzzed_arguments_get_a_message_never_a_traceback(argv, tmp_path_factory):
    if "simulate" in argv and any(
        flag == "--positions" and value.strip().isdigit() and int(value) > 0
        for flag, value in itertools.pairwise(argv)
    ):
        return  # possibly a valid (and long) simulation: not a mistake
    with (
        mock.patch.dict(os.environ, NO_KEYS, clear=True),
        contextlib.chdir(tmp_path_factory.mktemp("fuzz")),  # a relative --state stays here
    ):
        code, out, err = run_cli(argv)
    assert "Traceback" not in err and "Traceback" not in out
    assert code in (0, 2), (argv, err)
    if code == 2:
        assert err.strip(), argv  # a message, not silence


@pytest.mark.parametrize(
    "argv",
    [
        ["config", "check", "\x00"],
        ["backtest", "--config", str(CONFIG / "default.yaml"), "--data", "\x00"],
        ["simulate", "--positions", "1", "--state", "a\x00b"],
    ],
)
def test_a_nul_byte_in_an_argument_is_a_mistake_not_a_crash(argv):
    """Found by the fuzzer: a NUL byte in a file name ended in 'unexpected error' (exit 1)."""
    code, _out, err = run_cli(argv)
    assert_user_mistake(code, err, "contains a NUL byte")
